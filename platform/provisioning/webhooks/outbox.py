"""Queue a final task's webhook: read its record, publish its notice with confirms, mark it.

Whoever holds the trigger of a final status queues its webhook before acking the trigger: the
results consumer (completed, failed), ``DELETE`` (cancelled) and a worker that meets a task
already final or cancelled. The store says when one is due (``Transition.callback_url``: the
task has a callbackUrl and its webhook is not marked queued), so a crash between the final
write and the publish becomes a redelivery that queues it then. A crash between the publish
and the mark queues it twice: same webhook id, which receivers deduplicate. A task whose create
answered 500 (failed ``not_queued``) gets no webhook: its client never learnt its id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..backoff import Backoff
from ..collaborators import InboundDelivery, ResultPublisher
from ..errors import DependencyUnavailable
from ..held_retry import retry_while_held
from ..models import FailureReason, TaskRecord
from .notice import WebhookNotice

log = logging.getLogger(__name__)

# While Redis or the broker is away, a holder of the trigger retries this way.
QUEUE_RETRY = Backoff(initial_seconds=0.5, max_seconds=5.0)


class WebhookRecords(Protocol):
    """What the outbox needs of the task store (``TaskStore``)."""

    async def get(self, task_id: str, equipment_id: str | None = None) -> TaskRecord | None: ...

    async def mark_webhook_queued(self, task_id: str, equipment_id: str | None = None
                                  ) -> None: ...


class WebhookOutbox:
    def __init__(self, store: WebhookRecords, broker: ResultPublisher, queue: str, *,
                 on_queued: Callable[[], None] | None = None,
                 retry: Backoff = QUEUE_RETRY) -> None:
        self._store = store
        self._broker = broker
        self._queue = queue
        self._on_queued = on_queued
        self._retry = retry

    async def queue(self, task_id: str, url: str) -> None:
        """Raises ``StoreUnavailable`` or ``BrokerUnavailable`` when it could not."""
        record = await self._store.get(task_id)
        if record is None or not record.status.is_final:
            return  # expired or deleted meanwhile: nothing left to tell
        if record.failure is FailureReason.NOT_QUEUED:
            return  # its create answered 500: its client never learnt of it
        notice = WebhookNotice.of(record, url)
        await self._broker.publish(self._queue, notice.encode(), message_id=notice.webhook_id)
        await self._store.mark_webhook_queued(task_id, record.equipment_id)
        if self._on_queued is not None:
            self._on_queued()
        log.info("webhook queued", extra={"task_id": task_id})

    async def queue_held(self, delivery: InboundDelivery, task_id: str, url: str) -> bool:
        """``queue``, retrying while the trigger is held; False once its channel is gone (the
        broker redelivers the trigger, which queues the webhook then)."""
        return await retry_while_held(
            delivery, lambda: self.queue(task_id, url), retried=(DependencyUnavailable,),
            backoff=self._retry, what="queueing the webhook", fields={"task_id": task_id},
        )
