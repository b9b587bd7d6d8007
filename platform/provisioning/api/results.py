"""The results consumer: moves each task to its final status, holding the message until stored.

A final task with a callbackUrl gets its webhook queued (``webhooks.outbox``), and in serialize
mode the device's turn is handed over (``serialization``), both before the ack.
A result that cannot be stored because Redis is down is neither acked nor requeued (requeues
count against the queue's delivery limit): the consumer keeps it and retries the write with
backoff until Redis answers or the process stops, when the broker hands it to another consumer.
"""

from __future__ import annotations

import logging
import time

from ..collaborators import InboundDelivery, ResultTransitions, TurnHandOver, WebhookQueue
from ..errors import InvalidMessage
from ..models import ResultMessage, TaskStatus
from ..store import Transition, TransitionOutcome, until_available
from ..telemetry.metrics import ApiMetrics, exemplar
from ..telemetry.tracing import annotate

log = logging.getLogger(__name__)


class ResultRecorder:
    """The handler of the results queue: a message's fate is decided here and only here."""

    def __init__(self, store: ResultTransitions, metrics: ApiMetrics,
                 serializer: TurnHandOver | None = None, *,
                 webhooks: WebhookQueue | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._serializer = serializer  # serialize mode: the device's turn goes on
        self._webhooks = webhooks  # a final task with a callbackUrl: its webhook is queued

    async def __call__(self, delivery: InboundDelivery) -> None:
        try:
            result = ResultMessage.decode(delivery.body)
        except InvalidMessage as error:
            log.error("dead-lettering a malformed result: %s", error,
                      extra={"message_id": delivery.message_id})
            self._metrics.results.labels(outcome="malformed").inc()
            await delivery.dead_letter("malformed")
            return
        annotate(**{"task.id": result.task_id, "equipment.id": result.equipment_id})
        transition = await until_available(
            lambda: self._store.transition(result.task_id, result.status, result.failure,
                                           attempts=result.attempts),
            what="store a result",
            task_id=result.task_id,
        )
        fields = {"task_id": result.task_id, "status": result.status.value}
        if transition.outcome is TransitionOutcome.MISSING:
            log.error("dead-lettering a result for an unknown task", extra=fields)
            self._metrics.results.labels(outcome="unknown_task").inc()
            await delivery.dead_letter("unknown_task")
            return
        if transition.outcome is TransitionOutcome.STALE:
            log.info("result changes nothing, task already %s", transition.previous, extra=fields)
            self._metrics.results.labels(outcome="duplicate").inc()
        else:
            log.info("task finished", extra=fields)
            self._count_finished(result, transition)
        # Also after a duplicate: the first one's webhook or hand-over may have been cut short.
        if (transition.callback_url is not None and self._webhooks is not None
                and not await self._webhooks.queue_held(delivery, result.task_id,
                                                        transition.callback_url)):
            return
        if self._serializer is not None and not await self._serializer.hand_over_held(
                delivery, result.equipment_id):
            return
        await delivery.ack()

    def _count_finished(self, result: ResultMessage, transition: Transition) -> None:
        metrics = self._metrics
        metrics.results.labels(outcome="applied").inc()
        if result.status is TaskStatus.COMPLETED:
            metrics.tasks_completed.inc()
        else:
            metrics.tasks_failed.labels(reason=str(result.failure)).inc()
        if transition.created_at is not None:
            metrics.task_duration.labels(status=result.status.value).observe(
                max(time.time() - transition.created_at, 0.0), exemplar=exemplar()
            )
