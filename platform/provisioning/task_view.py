"""How a task looks to clients beyond the classic contract: the v2 detail object, which the v2
routes, the event stream and the webhooks share. camelCase, ISO-8601 UTC timestamps with
milliseconds (``2026-12-01T09:28:19.123Z``), and never a credential (the record has none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .models import TaskRecord


def timestamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_detail(record: TaskRecord) -> dict[str, Any]:
    """The v2 detail object of a task (camelCase; no credential exists to leak)."""
    return {
        "taskId": record.task_id,
        "equipmentId": record.equipment_id,
        "status": record.status.value,
        "failureReason": record.failure.value if record.failure else None,
        "createdAt": timestamp(record.created_at),
        "runningAt": timestamp(record.running_at),
        "finishedAt": timestamp(record.finished_at),
        "cancelRequestedAt": timestamp(record.cancel_requested_at),
        "cancelRequested": record.cancel_requested,
        "attempts": record.attempts,
        "traceId": record.trace_id,
    }
