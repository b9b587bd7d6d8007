"""The provisioning request, the task record, the task status and the queue messages.

Everything here is pure: parsing and validation raise ``InvalidRequest`` (a client's body)
or ``InvalidMessage`` (a queue message); encoding never touches the network.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import EquipmentNotFound, InvalidMessage, InvalidRequest, TaskNotFound

EQUIPMENT_ID_PATTERN = re.compile(r"[a-zA-Z0-9]{6,}")
VLAN_RANGE = range(1, 4095)


def check_equipment_id(equipment_id: str) -> str:
    """Return the id if it has the contract's shape, else raise ``EquipmentNotFound``."""
    if EQUIPMENT_ID_PATTERN.fullmatch(equipment_id) is None:
        raise EquipmentNotFound()
    return equipment_id


def check_task_id(task_id: str) -> str:
    """Task ids are UUIDs; anything else cannot name a task."""
    try:
        parsed = uuid.UUID(task_id)
    except ValueError:
        raise TaskNotFound() from None
    if str(parsed) != task_id.lower():
        raise TaskNotFound()
    return str(parsed)


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # only ever through DELETE (an opt-in addition to the contract)

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class FailureReason(enum.StrEnum):
    """Why a task ended ``failed``; a low-cardinality label, never an id."""

    EQUIPMENT_NOT_FOUND = "equipment_not_found"
    REJECTED_BY_SERVICE_A = "rejected_by_service_a"
    SERVICE_A_UNAVAILABLE = "service_a_unavailable"
    NOT_QUEUED = "not_queued"  # the create answered 500: the task must never run


@dataclass(frozen=True, slots=True)
class DeviceParameters:
    username: str = field(repr=False)
    password: str = field(repr=False)
    interfaces: tuple[int, ...]
    vlan: int | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "interfaces": list(self.interfaces),
        }
        if self.vlan is not None:
            wire["vlan"] = self.vlan
        return wire


@dataclass(frozen=True, slots=True)
class ProvisioningRequest:
    """The body of ``POST /api/v1/equipment/cpe/{id}``, on Service B and Service A alike."""

    timeout_in_seconds: int
    parameters: DeviceParameters

    def to_wire(self) -> dict[str, Any]:
        return {"timeoutInSeconds": self.timeout_in_seconds, "parameters": self.parameters.to_wire()}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: object, where: str) -> int:
    if not _is_int(value) or value <= 0:  # type: ignore[operator]
        raise InvalidRequest(f"{where} must be a positive integer")
    return value  # type: ignore[return-value]


def _non_empty_string(parameters: dict[str, Any], name: str) -> str:
    where = f"parameters.{name}"
    if name not in parameters:
        raise InvalidRequest(f"{where} is required")
    value = parameters[name]
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where} must be a non-empty string")
    return value


def parse_json_body(raw: bytes) -> object:
    """Decode a request body, raising ``InvalidRequest`` that says why it is not JSON."""
    if not raw:
        raise InvalidRequest("Request body is empty; a JSON object is expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidRequest("Request body is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"Request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None
    except ValueError as error:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise InvalidRequest(f"Request body is not valid JSON: {error}") from None


def parse_provisioning_request(body: object) -> ProvisioningRequest:
    """Validate a decoded body against the contract; unknown fields are ignored."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    if "timeoutInSeconds" not in body:
        raise InvalidRequest("timeoutInSeconds is required")
    timeout = _positive_int(body["timeoutInSeconds"], "timeoutInSeconds")
    if "parameters" not in body:
        raise InvalidRequest("parameters is required")
    parameters = body["parameters"]
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters must be a JSON object")
    username = _non_empty_string(parameters, "username")
    password = _non_empty_string(parameters, "password")
    vlan = parameters.get("vlan")
    if vlan is not None and (not _is_int(vlan) or vlan not in VLAN_RANGE):
        raise InvalidRequest("parameters.vlan must be an integer from 1 to 4094")
    if "interfaces" not in parameters:
        raise InvalidRequest("parameters.interfaces is required")
    interfaces = parameters["interfaces"]
    if not isinstance(interfaces, list) or not interfaces:
        raise InvalidRequest("parameters.interfaces must be a non-empty list of positive integers")
    checked = tuple(
        _positive_int(value, f"parameters.interfaces[{index}]")
        for index, value in enumerate(interfaces)
    )
    return ProvisioningRequest(
        timeout_in_seconds=timeout,
        parameters=DeviceParameters(
            username=username, password=password, interfaces=checked, vlan=vlan
        ),
    )


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What Redis holds about a task: never the device credentials."""

    task_id: str
    equipment_id: str
    status: TaskStatus
    created_at: float
    updated_at: float
    failure: FailureReason | None = None
    finished_at: float | None = None
    running_at: float | None = None
    cancel_requested_at: float | None = None  # set by DELETE on a pending or running task
    attempts: int | None = None  # calls made to Service A, known once the task is final
    trace_id: str | None = None  # the create's trace, when tracing was on
    callback_url: str | None = None  # where the final status is POSTed (``webhooks``)

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_requested_at is not None


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """A task on the tasks queue: everything a worker needs to call Service A."""

    task_id: str
    equipment_id: str
    request: ProvisioningRequest
    created_at: float

    def encode(self) -> bytes:
        return json.dumps(
            {
                "taskId": self.task_id,
                "equipmentId": self.equipment_id,
                "createdAt": self.created_at,
                "request": self.request.to_wire(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> TaskMessage:
        document = _decode_message(raw, "task")
        try:
            return cls(
                task_id=check_task_id(_field(document, "taskId", str)),
                equipment_id=check_equipment_id(_field(document, "equipmentId", str)),
                created_at=float(_field(document, "createdAt", (int, float))),
                request=parse_provisioning_request(document.get("request")),
            )
        except (InvalidRequest, EquipmentNotFound, TaskNotFound, OverflowError) as error:
            raise InvalidMessage(f"task message is invalid: {error}") from None


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """A task's outcome on the results queue."""

    task_id: str
    equipment_id: str
    status: TaskStatus
    failure: FailureReason | None
    attempts: int
    finished_at: float

    def __post_init__(self) -> None:
        if not self.status.is_final:
            raise InvalidMessage(f"a result must be final, got {self.status}")
        if (self.status is TaskStatus.FAILED) != (self.failure is not None):
            raise InvalidMessage("a failed result needs a failure reason, and only it")

    def encode(self) -> bytes:
        return json.dumps(
            {
                "taskId": self.task_id,
                "equipmentId": self.equipment_id,
                "status": self.status.value,
                "failure": self.failure.value if self.failure else None,
                "attempts": self.attempts,
                "finishedAt": self.finished_at,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ResultMessage:
        document = _decode_message(raw, "result")
        failure = document.get("failure")
        try:
            return cls(
                task_id=check_task_id(_field(document, "taskId", str)),
                equipment_id=check_equipment_id(_field(document, "equipmentId", str)),
                status=TaskStatus(_field(document, "status", str)),
                failure=FailureReason(failure) if failure is not None else None,
                attempts=int(_field(document, "attempts", int)),
                finished_at=float(_field(document, "finishedAt", (int, float))),
            )
        except (ValueError, OverflowError, EquipmentNotFound, TaskNotFound) as error:
            raise InvalidMessage(f"result message is invalid: {error}") from None


def _decode_message(raw: bytes, kind: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # incl. UnicodeDecodeError and JSONDecodeError
        raise InvalidMessage(f"{kind} message is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidMessage(f"{kind} message is not a JSON object")
    return document


def _field(document: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidMessage(f"message field {name} is missing or has the wrong type")
    return value
