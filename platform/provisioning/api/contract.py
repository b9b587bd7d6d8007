"""The HTTP contract's answers, and the one place where errors become them."""

from __future__ import annotations

import logging

from sanic import HTTPResponse, Request, json
from sanic.exceptions import SanicException

from ..errors import (
    BrokerBlocked,
    DependencyUnavailable,
    EquipmentNotFound,
    ProvisioningFailed,
    RequestRejected,
    ServiceOverloaded,
)
from ..models import FailureReason, TaskRecord, TaskStatus

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal provisioning exception"
COMPLETED = "Completed"
STILL_RUNNING = "Task is still running"
OVERLOADED = "Service is overloaded, retry later"
CANCELLED = "Task was cancelled"  # only a DELETE makes a task cancelled (an addition)
CANCELLED_CODE = 410
CANCEL_ACCEPTED = "Task cancellation accepted"


def answer(status: int, code: int | None = None, **fields: str) -> HTTPResponse:
    """``{"code": code, ...fields}`` with HTTP ``status``; ``code`` defaults to ``status``."""
    return json({"code": status if code is None else code, **fields}, status=status)


def task_created(task_id: str) -> HTTPResponse:
    return answer(200, taskId=task_id)


def task_completed() -> HTTPResponse:
    return answer(200, message=COMPLETED)


def task_running() -> HTTPResponse:
    return answer(200, code=204, message=STILL_RUNNING)


def task_cancelled() -> HTTPResponse:
    """The classic GET of a cancelled task: HTTP 200 with the code in the body, as for 204."""
    return answer(200, code=CANCELLED_CODE, message=CANCELLED)


def cancel_accepted() -> HTTPResponse:
    return answer(202, message=CANCEL_ACCEPTED)


def task_status(record: TaskRecord) -> HTTPResponse:
    """The classic GET's answer for a task: raises the domain error a failed task maps to."""
    if record.status is TaskStatus.COMPLETED:
        return task_completed()
    if record.status is TaskStatus.FAILED:
        if record.failure is FailureReason.EQUIPMENT_NOT_FOUND:
            raise EquipmentNotFound()
        raise ProvisioningFailed(record.failure)
    if record.status is TaskStatus.CANCELLED:
        return task_cancelled()
    return task_running()


def final_state(status: TaskStatus, failure: FailureReason | None) -> HTTPResponse:
    """DELETE of a final task: HTTP 200 with the body the classic GET answers for it."""
    if status is TaskStatus.COMPLETED:
        return task_completed()
    if status is TaskStatus.CANCELLED:
        return task_cancelled()
    if failure is FailureReason.EQUIPMENT_NOT_FOUND:
        return answer(200, code=EquipmentNotFound.status, message=EquipmentNotFound.message)
    return answer(200, code=500, message=INTERNAL_ERROR)


async def error_answer(request: Request, error: Exception) -> HTTPResponse:
    """Registered for every exception: domain errors and Sanic's own alike."""
    if isinstance(error, RequestRejected):
        rejected = json({"code": error.status, "message": error.message, **error.body_fields()},
                        status=error.status)
        rejected.headers.update(error.headers())
        return rejected
    if isinstance(error, ProvisioningFailed):
        return answer(500, message=INTERNAL_ERROR)
    if isinstance(error, ServiceOverloaded | BrokerBlocked):
        # BrokerBlocked: a RabbitMQ resource alarm blocks publishing; the broker logs it once.
        response = answer(503, message=OVERLOADED)
        response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response
    if isinstance(error, DependencyUnavailable):
        log.warning("dependency unavailable: %s", error, extra={"path": request.path})
        return answer(500, message=INTERNAL_ERROR)
    if isinstance(error, SanicException) and error.status_code < 500:
        return answer(error.status_code, message=str(error.message or error))
    log.error("unexpected error", exc_info=error, extra={"path": request.path})
    return answer(500, message=INTERNAL_ERROR)
