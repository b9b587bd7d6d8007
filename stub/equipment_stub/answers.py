"""The stub's answers, and the one place where its errors become them.

They follow the README's "Service A stub" table and are the stub's own, not Service B's: the
stub stands in for an external system, and a stub answering with B's error mapping could not
show a drift between what a Service A sends and what the worker's client expects. The contract
test (``tests/e2e/test_service_a_contract.py``) holds the two sides together.
"""

from __future__ import annotations

import logging
from typing import Any

from sanic import HTTPResponse, Request, json
from sanic.exceptions import SanicException

log = logging.getLogger(__name__)

SUCCESS = "success"
EQUIPMENT_NOT_FOUND = "The requested equipment is not found"
INTERNAL_ERROR = "Internal provisioning exception"


class Refusal(Exception):
    """A request the stub refuses at once; ``status`` and ``message`` are what the caller sees."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidBody(Refusal):
    """400: the body is not JSON or breaks the contract; the message says which field and why."""


class UnknownEquipment(Refusal):
    """404: a malformed id, or one the stub was told not to know."""

    status = 404

    def __init__(self) -> None:
        super().__init__(EQUIPMENT_NOT_FOUND)


def answer(status: int, message: str) -> HTTPResponse:
    """``{"code": status, "message": message}`` with HTTP ``status``."""
    return json({"code": status, "message": message}, status=status)


async def error_answer(request: Request[Any, Any], error: Exception) -> HTTPResponse:
    """Registered for every exception: the stub's refusals and Sanic's own (404, 405, 413)."""
    if isinstance(error, Refusal):
        return answer(error.status, error.message)
    if isinstance(error, SanicException) and error.status_code < 500:
        return answer(error.status_code, str(error.message or error))
    log.error("unexpected error", exc_info=error, extra={"path": request.path})
    return answer(500, INTERNAL_ERROR)
