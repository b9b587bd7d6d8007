"""A task's events: what its log (a Redis stream per task) holds and its notices announce.

The store writes an event in the same Lua script as the change it reports (``store._EMIT``):
``pending`` at the create, ``running``, one ``attempt`` per Service A call (best effort, from
the worker), and the final ``completed``, ``failed`` or ``cancelled``. The same script
publishes "{task id} {type}" on the events channel, which Service B's one subscription per
process turns into wake-ups (``api.waiters``). The log is bounded (``TASK_EVENT_LOG_LIMIT``)
and expires with the task.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from .models import FailureReason, TaskStatus

# A Redis stream id, as Last-Event-ID must carry one: milliseconds-sequence. Each part is an
# unsigned 64-bit integer to Redis; at most 19 digits keeps every id Redis can read after (a
# millisecond time has 13 digits), and none past 2**64 - 1 or the very last id, after which
# Redis refuses to read (OpenAPI documents the same pattern).
EVENT_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")


class EventType(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    ATTEMPT = "attempt"  # one Service A call ended (its number and outcome)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self.value in FINAL_TYPES


FINAL_TYPES = frozenset(status.value for status in TaskStatus if status.is_final)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One entry of a task's event log."""

    event_id: str  # the stream id: increasing within a task's log
    type: EventType
    at: float
    failure: FailureReason | None = None
    attempts: int | None = None  # final events: the Service A calls made
    attempt: int | None = None  # attempt events: which call
    outcome: str | None = None  # attempt events: success, not_found, rejected or error

    @classmethod
    def from_stream(cls, event_id: str, fields: dict[str, str]) -> TaskEvent:
        failure = fields.get("failure")
        attempts = fields.get("attempts")
        attempt = fields.get("attempt")
        return cls(
            event_id=event_id,
            type=EventType(fields["type"]),
            at=float(fields.get("at", 0.0)),
            failure=FailureReason(failure) if failure else None,
            attempts=int(attempts) if attempts else None,
            attempt=int(attempt) if attempt else None,
            outcome=fields.get("outcome") or None,
        )

    def to_json(self, task_id: str, timestamp: str | None) -> dict[str, Any]:
        """The event as clients see it (``timestamp`` is ``at`` as ISO-8601 UTC)."""
        document: dict[str, Any] = {"taskId": task_id, "type": self.type.value, "at": timestamp}
        if self.type is EventType.ATTEMPT:
            document.update(attempt=self.attempt, outcome=self.outcome)
        if self.type.is_final:
            document.update(status=self.type.value, attempts=self.attempts,
                            failureReason=self.failure.value if self.failure else None)
        return document


def parse_notice(payload: str) -> tuple[str, str] | None:
    """A notice's task id and event type; None for anything else."""
    task_id, _, kind = payload.partition(" ")
    return (task_id, kind) if task_id and kind else None


def is_event_id(text: str) -> bool:
    return EVENT_ID.fullmatch(text) is not None
