"""The provisioning domain's exceptions, in one tree.

    ProvisioningError
    ├── SettingsError               a variable of the environment is missing or malformed
    ├── RequestRejected             the client's request breaks the contract (4xx)
    │   ├── InvalidRequest          400: the body or a field is wrong; says which and why
    │   ├── EquipmentNotFound       404: the equipment id is malformed or unknown to Service A
    │   ├── TaskNotFound            404: no such task for this equipment (or it expired)
    │   ├── Conflict                409: the request clashes with the state of a task or device
    │   │   ├── IdempotentRequestInProgress  409: the first request with this Idempotency-Key is not done
    │   │   └── EquipmentBusy       409: reject mode, the device has an unfinished task (its taskId)
    │   │       └── EquipmentQueueFull  409: serialize mode, the device has its limit of tasks waiting
    │   ├── IdempotencyKeyReused    422: the Idempotency-Key was used with a different body
    │   └── UnsupportedMediaType    415: API_REQUIRE_JSON_CONTENT_TYPE, a body not sent as JSON
    ├── ProvisioningFailed          500: the task ended in failure
    ├── ServiceOverloaded           503: this process holds its limit of requests in flight
    ├── DependencyUnavailable       (also ConnectionError) Redis or RabbitMQ cannot serve now
    │   ├── StoreUnavailable
    │   └── BrokerUnavailable
    │       ├── BrokerNotConnected  the publish never left this process
    │       └── BrokerBlocked       503: a resource alarm blocks publishing (Retry-After)
    │           └── BrokerBlockedRefused  (also BrokerNotConnected) refused before sending
    ├── InvalidMessage              a message on a queue cannot be decoded (poison)
    └── ServiceACallError           calling Service A went wrong
        ├── ServiceATransientError  connection error, timeout, 5xx: worth another attempt
        └── ServiceAFinalError      an answer that another attempt cannot change (4xx)

Handlers raise these; ``provisioning.api.contract`` turns them into the HTTP contract's
answers in one place, and ``provisioning.worker.consumer`` turns them into a message's fate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable


class ProvisioningError(Exception):
    """Base of every error this package raises on purpose."""


class SettingsError(ProvisioningError, ValueError):
    """A setting from the environment is invalid; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


class RequestRejected(ProvisioningError):
    """The request breaks the contract; ``status`` and ``message`` are what the client sees."""

    status: int = 400
    message: str = "Bad request"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def body_fields(self) -> dict[str, str]:
        """Fields the answer's body carries besides ``code`` and ``message``."""
        return {}

    def headers(self) -> dict[str, str]:
        """Headers the answer carries (``Retry-After``, say)."""
        return {}


class InvalidRequest(RequestRejected):
    status = 400


class EquipmentNotFound(RequestRejected):
    status = 404
    message = "The requested equipment is not found"


class TaskNotFound(RequestRejected):
    status = 404
    message = "The requested task is not found"


class Conflict(RequestRejected):
    """409: the request clashes with the current state of a task or a device."""

    status = 409
    message = "Conflict"


class IdempotentRequestInProgress(Conflict):
    """409: the first request with this Idempotency-Key is between its claim and its answer."""

    message = "A request with this Idempotency-Key is still being processed"
    retry_after_seconds = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class EquipmentBusy(Conflict):
    """409 (``EQUIPMENT_CONCURRENCY=reject``): the device already has an unfinished task."""

    message = "Equipment already has a task in progress"

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id

    def body_fields(self) -> dict[str, str]:
        return {"taskId": self.task_id}


class EquipmentQueueFull(EquipmentBusy):
    """409 (``EQUIPMENT_CONCURRENCY=serialize``): the device already has ``EQUIPMENT_MAX_WAITING``
    tasks waiting for their turn; ``taskId`` names the one that holds the turn now."""

    message = "Equipment has too many tasks waiting"


class IdempotencyKeyReused(RequestRejected):
    """422: the Idempotency-Key was already used, in its scope, with a different request body."""

    status = 422
    message = "Idempotency-Key was already used with a different request body"


class UnsupportedMediaType(RequestRejected):
    """415 (``API_REQUIRE_JSON_CONTENT_TYPE``): a JSON body sent without ``Content-Type:
    application/json``."""

    status = 415
    message = "Content-Type must be application/json"


class ProvisioningFailed(ProvisioningError):
    """The task reached its final state ``failed``."""


class ServiceOverloaded(ProvisioningError):
    """Service B is at its in-flight limit; the client should retry after a pause."""

    retry_after_seconds = 1


class DependencyUnavailable(ProvisioningError, ConnectionError):
    """A backing service (Redis, RabbitMQ) cannot serve the operation right now."""


class StoreUnavailable(DependencyUnavailable):
    """Redis did not answer or refused the operation."""


class BrokerUnavailable(DependencyUnavailable):
    """RabbitMQ cannot serve: no connection in time, or a publish it did not confirm (that
    message may or may not be queued)."""


class BrokerNotConnected(BrokerUnavailable):
    """There is no connection: the message surely never reached RabbitMQ."""


class BrokerBlocked(BrokerUnavailable):
    """RabbitMQ blocks this connection's publishing: a memory or disk alarm is in effect
    somewhere in the cluster (``messaging.blocking``). Raised for a publish that was waiting
    for its confirm when the block arrived: it may or may not be queued (it will be once the
    alarm clears, if the broker had not read it). Service B answers 503 with Retry-After;
    ``unblocked`` returns once the connection is unblocked (``held_retry`` retries then rather
    than after its whole pause)."""

    retry_after_seconds = 5

    def __init__(self, message: str, *,
                 unblocked: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(message)
        self.unblocked = unblocked


class BrokerBlockedRefused(BrokerBlocked, BrokerNotConnected):
    """A publish (or a channel) refused at once while the connection is blocked: like
    ``BrokerNotConnected``, it never left this process."""


class InvalidMessage(ProvisioningError):
    """A queue message that can never be processed: not JSON, or not of the expected schema."""


class ServiceACallError(ProvisioningError):
    """Calling Service A did not give a success."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceATransientError(ServiceACallError):
    """Connection error, timeout or a 5xx answer: another attempt may succeed."""


class ServiceAFinalError(ServiceACallError):
    """An answer no retry can change, such as 404 for unknown equipment."""

    def __init__(self, reason: str, *, equipment_unknown: bool = False) -> None:
        super().__init__(reason)
        self.equipment_unknown = equipment_unknown
