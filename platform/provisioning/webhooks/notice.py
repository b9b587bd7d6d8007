"""The message on the webhooks queue: one final task's webhook, ready to sign and POST.

The body is fixed when the notice is made, so every attempt sends (and signs) the same bytes;
``webhook_id`` is stable per task, so receivers can deduplicate the at-least-once deliveries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InvalidMessage
from ..models import TaskRecord
from ..task_view import task_detail, timestamp

WEBHOOK_ID_PREFIX = "msg_"
EVENT_TYPE_PREFIX = "task."  # task.completed, task.failed, task.cancelled


def webhook_id(task_id: str) -> str:
    """One final status per task, so one webhook id per task."""
    return f"{WEBHOOK_ID_PREFIX}{task_id.replace('-', '')}"


def event_body(record: TaskRecord) -> bytes:
    """The JSON POSTed to the receiver, in Standard Webhooks' shape: type, timestamp, data."""
    event = {
        "type": f"{EVENT_TYPE_PREFIX}{record.status.value}",
        "timestamp": timestamp(record.finished_at or record.updated_at),
        "data": task_detail(record),
    }
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class WebhookNotice:
    webhook_id: str
    task_id: str
    url: str
    final_at: float  # when the final status was written: delivery latency starts there
    body: bytes
    attempt: int = 1  # the delivery attempt this message is for: 1, then one per retry

    def next_attempt(self) -> WebhookNotice:
        return replace(self, attempt=self.attempt + 1)

    @classmethod
    def of(cls, record: TaskRecord, url: str) -> WebhookNotice:
        return cls(webhook_id(record.task_id), record.task_id, url,
                   record.finished_at or record.updated_at, event_body(record))

    def encode(self) -> bytes:
        return json.dumps({
            "webhookId": self.webhook_id,
            "taskId": self.task_id,
            "url": self.url,
            "finalAt": self.final_at,
            "body": self.body.decode(),
            "attempt": self.attempt,
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WebhookNotice:
        try:
            document: Any = json.loads(raw)
            if not isinstance(document, dict):
                raise TypeError("not an object")
            notice = cls(str(document["webhookId"]), str(document["taskId"]),
                         str(document["url"]), float(document["finalAt"]),
                         str(document["body"]).encode(), int(document.get("attempt", 1)))
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            raise InvalidMessage(f"webhook message is invalid: {error!r}") from None
        if not notice.webhook_id.startswith(WEBHOOK_ID_PREFIX) or not notice.url or notice.attempt < 1:
            raise InvalidMessage("webhook message is invalid: no webhook id or url")
        return notice
