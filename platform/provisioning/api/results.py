"""The results consumer: moves each task to its final status, holding the message until stored.

A final task with a callbackUrl gets its webhook queued (``webhooks.outbox``), and in serialize
mode the device's turn is handed over (``serialization``), both before the ack.
A result that cannot be stored because Redis is down is neither acked nor requeued (requeues
count against the queue's delivery limit): the consumer keeps it and retries the write with
backoff until Redis answers or the process stops, when the broker hands it to another consumer.

    malformed                                   -> dead-letter
    no record, on one node or expired           -> dead-letter (unknown_task)
    no record, with Sentinel                    -> restore the final record from the result, ack
        (a failover lost the record after the task ran: ``TaskStore.restorable``; the restored
        record has no trace id or callbackUrl, and its creation time is the result's)
    applied, or stale (a duplicate)             -> webhook, hand-over, ack

The final status is a durable write (``REDIS_WAIT_REPLICAS``): until enough replicas
acknowledged it the store answers unavailable, and the result is held and retried, so a result
is never acked for a status that a failover could still lose.
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
        fields = {"task_id": result.task_id, "status": result.status.value}
        transition = await self._store_result(result)
        if transition.outcome is TransitionOutcome.MISSING and self._store.restorable(
                result.finished_at):
            restored = await until_available(
                lambda: self._store.restore(result.task_id, result.equipment_id, result.status,
                                            created_at=result.finished_at, failure=result.failure,
                                            attempts=result.attempts),
                what="restore a task's final record", task_id=result.task_id)
            if restored:
                log.warning("task had no record (lost in a Redis failover); restored its final "
                            "status from the result", extra=fields)
                self._count_finished(result, None, outcome="restored")
                transition = Transition(TransitionOutcome.APPLIED, None)
            else:  # written meanwhile by someone else: store the result on it as usual
                transition = await self._store_result(result)
        if transition.outcome is TransitionOutcome.MISSING:
            log.error("dead-lettering a result for an unknown task", extra=fields)
            self._metrics.results.labels(outcome="unknown_task").inc()
            await delivery.dead_letter("unknown_task")
            return
        if transition.outcome is TransitionOutcome.STALE:
            log.info("result changes nothing, task already %s", transition.previous, extra=fields)
            self._metrics.results.labels(outcome="duplicate").inc()
        elif transition.previous is not None:  # applied (a restored record was counted above)
            log.info("task finished", extra=fields)
            self._count_finished(result, transition.created_at)
        # Also after a duplicate: the first one's webhook or hand-over may have been cut short.
        if (transition.callback_url is not None and self._webhooks is not None
                and not await self._webhooks.queue_held(delivery, result.task_id,
                                                        transition.callback_url)):
            return
        if self._serializer is not None and not await self._serializer.hand_over_held(
                delivery, result.equipment_id):
            return
        await delivery.ack()

    async def _store_result(self, result: ResultMessage) -> Transition:
        return await until_available(
            lambda: self._store.transition(result.task_id, result.status, result.failure,
                                           attempts=result.attempts,
                                           equipment_id=result.equipment_id),
            what="store a result",
            task_id=result.task_id,
        )

    def _count_finished(self, result: ResultMessage, created_at: float | None, *,
                        outcome: str = "applied") -> None:
        metrics = self._metrics
        metrics.results.labels(outcome=outcome).inc()
        if result.status is TaskStatus.COMPLETED:
            metrics.tasks_completed.inc()
        else:
            metrics.tasks_failed.labels(reason=str(result.failure)).inc()
        if created_at is not None:
            metrics.task_duration.labels(status=result.status.value).observe(
                max(time.time() - created_at, 0.0), exemplar=exemplar()
            )
