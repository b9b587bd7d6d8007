"""What the scenarios know of Service B's contract: paths, messages, bodies, and the names
under which Locust reports requests and whole tasks.

Locust's helper package must not import the platform: the Locust image of the compose file
mounts ``loadtest/`` alone, so the contract is written down here from the README.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

# Request entries, one per endpoint whatever the ids.
CREATE = "POST /api/v1/equipment/cpe/[id]"
STATUS = "GET /api/v1/equipment/cpe/[id]/task/[task]"
REPLAY = "POST /api/v1/equipment/cpe/[id] (Idempotency-Key replay)"
CANCEL = "DELETE /api/v1/equipment/cpe/[id]/task/[task]"
LONG_POLL = "GET /api/v1/equipment/cpe/[id]/task/[task]?wait=[seconds]"
# One entry per webhook call the receiver got: its time is the completion-notice latency
# (received - the task's finishedAt); a signature that does not verify is a failure.
WEBHOOK_DELIVERY = "webhook delivery"
# Whole-task entries ("task e2e ..."): tests/load reads them by these names.
TASK_E2E = "task e2e"
TASK_INJECTED = "task e2e injected failure"
TASK_INTERRUPTED = "task e2e interrupted"
TASK_FAIL_ID = "task e2e fail-id"
TASK_UNKNOWN_ID = "task e2e unknown-id"
TASK_IDEMPOTENT = "task e2e idempotent"
TASK_CANCELLED = "task e2e cancelled"
TASK_CANCEL_TOO_LATE = "task e2e cancel too late"
TASK_LONG_POLL = "task e2e long-poll"
TASK_WEBHOOK = "task e2e webhook"

COMPLETED = "Completed"
STILL_RUNNING = "Task is still running"
INTERNAL_ERROR = "Internal provisioning exception"
EQUIPMENT_NOT_FOUND = "The requested equipment is not found"
TASK_NOT_FOUND = "The requested task is not found"
CANCELLED = "Task was cancelled"  # the classic GET of a task cancelled through DELETE
CANCELLED_CODE = 410

# How a task for an id the stub fails on purpose ends: (HTTP status, message).
KNOWN_FAULT_ANSWERS = {
    TASK_FAIL_ID: (500, INTERNAL_ERROR),
    TASK_UNKNOWN_ID: (404, EQUIPMENT_NOT_FOUND),
}


def create_path(equipment_id: str) -> str:
    return f"/api/v1/equipment/cpe/{equipment_id}"


def status_path(equipment_id: str, task_id: str) -> str:
    return f"/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"


def long_poll_path(equipment_id: str, task_id: str, wait: float) -> str:
    """``?wait=`` takes seconds with at most three decimals."""
    return f"{status_path(equipment_id, task_id)}?wait={round(wait, 3):g}"


def provisioning_body(password: str = "load-test-secret", callback_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "timeoutInSeconds": 14,
        "parameters": {"username": "admin", "password": password, "vlan": 534, "interfaces": [1, 2, 3, 4]},
    }
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    return body


def fresh_equipment_id() -> str:
    return f"CPE{uuid.uuid4().hex[:12].upper()}"


def json_object(content: bytes | None) -> dict[str, Any]:
    """A response body as a JSON object; empty when it is none."""
    try:
        body = json.loads(content or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_still_running(status: int, answer: dict[str, Any]) -> bool:
    return status == 200 and answer.get("code") == 204


def is_cancelled(status: int, answer: dict[str, Any]) -> bool:
    return status == 200 and answer.get("code") == CANCELLED_CODE and answer.get("message") == CANCELLED


def status_in_contract(status: int, answer: dict[str, Any]) -> bool:
    """Whether a status read got one of the answers the contract promises."""
    return (
        (status == 200 and answer.get("code") in (200, 204))
        or is_cancelled(status, answer)
        or (status == 500 and answer.get("message") == INTERNAL_ERROR)
        or (status == 404 and answer.get("message") in (EQUIPMENT_NOT_FOUND, TASK_NOT_FOUND))
    )
