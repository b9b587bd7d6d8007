"""The provisioning request, the task record, the task status and the queue messages.

Everything here is pure: parsing and validation raise ``InvalidRequest`` (a client's body)
or ``InvalidMessage`` (a queue message); encoding never touches the network.

A request body is read strictly (RFC 8259 JSON, JSON Schema's idea of an integer):

- a key twice in one object (at any depth) is refused, naming the key: "the last one wins"
  would let ``{"timeoutInSeconds": -5, "timeoutInSeconds": 1}`` mean whatever a parser picks;
- ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's ``json`` accepts) are refused;
- an integral number is that integer, however it is written (``81421.0``, ``1e3``, as JSON
  Schema's ``integer`` has it), and is queued and forwarded as the integer; a number with a
  fraction is refused;
- numbers are compared with their bounds (``RequestLimits``) before they are ever converted,
  so no literal, however long, costs a big conversion or reaches the interpreter's
  4,300-digit limit: an integer literal past ``MAX_INTEGER_DIGITS`` characters, and every
  literal with a fraction or an exponent, is read as an exact ``Decimal``.
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import EquipmentNotFound, InvalidMessage, InvalidRequest, TaskNotFound
from .request_limits import DEFAULT_LIMITS, UNLIMITED, RequestLimits

# At most 128 characters: twice a TR-069 serial number (string(64)), and the longest id
# that reaches Redis, a log line or Service A. A longer id is "not found" like any other id
# of the wrong shape (the classic 404), so no client learns a new answer.
EQUIPMENT_ID_MAX_LENGTH = 128
EQUIPMENT_ID_PATTERN = re.compile(rf"[a-zA-Z0-9]{{6,{EQUIPMENT_ID_MAX_LENGTH}}}")
# A queued message was checked by the Service B that queued it, maybe before the bound existed:
# its id needs only the shape (the message's size is bounded by MAX_MESSAGE_BYTES).
QUEUED_EQUIPMENT_ID_PATTERN = re.compile(r"[a-zA-Z0-9]{6,}")
VLAN_RANGE = range(1, 4095)
MAX_INTEGER_DIGITS = 40  # integer literals longer than this are read as a Decimal, never int()


def check_equipment_id(equipment_id: str) -> str:
    """Return the id if it has the contract's shape, else raise ``EquipmentNotFound``."""
    if EQUIPMENT_ID_PATTERN.fullmatch(equipment_id) is None:
        raise EquipmentNotFound()
    return equipment_id


def _queued_equipment_id(equipment_id: str) -> str:
    if QUEUED_EQUIPMENT_ID_PATTERN.fullmatch(equipment_id) is None:
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


def _integral(value: object) -> int | float | Decimal | None:
    """The number if it is an integer in JSON Schema's sense (``3``, ``3.0``, ``3e0``), else None.

    Not converted to ``int`` here: the caller compares it with its bounds first. An infinity
    (a literal such as ``1e999999999999999999999``, past even ``Decimal``'s exponents) counts as
    an integer beyond every bound; NaN is no number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value.is_integer() or math.isinf(value) else None
    if isinstance(value, Decimal):
        integral = value.is_infinite() or (value.is_finite() and value == value.to_integral_value())
        return value if integral else None
    return None


def _integer(value: object, where: str, maximum: int) -> int:
    """A positive integer up to ``maximum``, as an ``int``; else a 400 saying which bound."""
    number = _integral(value)
    if number is None or number < 1:
        raise InvalidRequest(f"{where} must be a positive integer")
    if number > maximum:
        raise InvalidRequest(f"{where} must be at most {maximum}")
    return int(number)


def _non_empty_string(parameters: dict[str, Any], name: str, max_length: int) -> str:
    where = f"parameters.{name}"
    if name not in parameters:
        raise InvalidRequest(f"{where} is required")
    value = parameters[name]
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where} must be a non-empty string")
    if len(value) > max_length:
        raise InvalidRequest(f"{where} must be at most {max_length} characters long")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidRequest(f"Request body has the key {_shown(key)} more than once "
                                     "in one object")
            seen.add(key)
    return document


def _shown(key: str, limit: int = 64) -> str:
    """A client's key as a JSON string (control characters escaped), cut to ``limit``."""
    quoted = json.dumps(key)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + '..."'


def _integer_literal(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INTEGER_DIGITS else Decimal(text)


def _number_literal(text: str) -> float | Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent past Decimal's range: an infinity or a zero
        return float(text)


def _no_constant(name: str) -> object:
    raise InvalidRequest(f"Request body is not valid JSON: {name} is not a JSON number")


def parse_json_body(raw: bytes) -> object:
    """Decode a request body strictly (see the module's docstring), raising ``InvalidRequest``
    that says why it is not JSON."""
    if not raw:
        raise InvalidRequest("Request body is empty; a JSON object is expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_integer_literal,
                          parse_float=_number_literal, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest("Request body is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"Request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}"
        ) from None


def parse_provisioning_request(body: object, limits: RequestLimits = DEFAULT_LIMITS
                               ) -> ProvisioningRequest:
    """Validate a decoded body against the contract and ``limits``; unknown fields are
    ignored. Numbers come out as ``int`` whatever their JSON spelling."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    if "timeoutInSeconds" not in body:
        raise InvalidRequest("timeoutInSeconds is required")
    timeout = _integer(body["timeoutInSeconds"], "timeoutInSeconds", limits.max_timeout_seconds)
    if "parameters" not in body:
        raise InvalidRequest("parameters is required")
    parameters = body["parameters"]
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters must be a JSON object")
    username = _non_empty_string(parameters, "username", limits.max_credential_length)
    password = _non_empty_string(parameters, "password", limits.max_credential_length)
    vlan = _vlan(parameters.get("vlan"))
    if "interfaces" not in parameters:
        raise InvalidRequest("parameters.interfaces is required")
    interfaces = parameters["interfaces"]
    if not isinstance(interfaces, list) or not interfaces:
        raise InvalidRequest("parameters.interfaces must be a non-empty list of positive integers")
    if len(interfaces) > limits.max_interfaces:
        raise InvalidRequest(f"parameters.interfaces must have at most {limits.max_interfaces} "
                             "entries")
    checked = tuple(
        _integer(value, f"parameters.interfaces[{index}]", limits.max_interface_number)
        for index, value in enumerate(interfaces)
    )
    return ProvisioningRequest(
        timeout_in_seconds=timeout,
        parameters=DeviceParameters(
            username=username, password=password, interfaces=checked, vlan=vlan
        ),
    )


def _vlan(value: object) -> int | None:
    if value is None:
        return None
    number = _integral(value)
    if number is None or not VLAN_RANGE.start <= number < VLAN_RANGE.stop:
        raise InvalidRequest("parameters.vlan must be an integer from 1 to 4094")
    return int(number)


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
                equipment_id=_queued_equipment_id(_field(document, "equipmentId", str)),
                created_at=float(_field(document, "createdAt", (int, float))),
                request=parse_provisioning_request(document.get("request"), UNLIMITED),
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
                equipment_id=_queued_equipment_id(_field(document, "equipmentId", str)),
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
