"""One task message's fate, decided in one place.

    malformed                          -> dead-letter
    no record, on one node or expired  -> dead-letter (unknown_task)
    no record, with Sentinel           -> restore the record as running from the message, run it
        (a failover lost it: a create answered 200 must not vanish; ``TaskStore.restorable``)
    cancelled (DELETE while pending)   -> ack, Service A is never called
    already final (a redelivery)       -> ack, Service A is not called again
        (serialize mode: both hand the device's turn over first, ``serialization``)
    otherwise: mark running, call Service A with retries (in reject and serialize mode each attempt holds
    the device's lease, ``equipment_lease``), publish the result with confirms, then ack. A
    result that cannot be published yet is retried while the task is held; only when the
    task's channel is gone is it left to the broker's redelivery.
Redis being down holds the message (see ``store.until_available``) rather than requeueing it.

A refused create never runs for want of a record: a tombstone is a record (and the running
transition is stale on it), and a create whose publish surely never left deletes its record
but has no message either. Only a tombstone lost together with its record (a failover right
after an unconfirmed publish) can make a refused create run; ``REDIS_WAIT_REPLICAS`` makes both
writes wait for a replica, which narrows that to losing the replica too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext

from ..backoff import Backoff
from ..collaborators import (
    AttemptLog,
    DeviceLease,
    InboundDelivery,
    ResultPublisher,
    ServiceA,
    TaskTransitions,
    TurnHandOver,
    WebhookQueue,
)
from ..errors import (
    BrokerUnavailable,
    InvalidMessage,
    ServiceACallError,
    ServiceAFinalError,
    ServiceATransientError,
    StoreUnavailable,
)
from ..held_retry import retry_while_held
from ..models import FailureReason, ResultMessage, TaskMessage, TaskStatus
from ..store import STORE_RETRY, Transition, TransitionOutcome, until_available
from ..telemetry.metrics import WorkerMetrics, exemplar
from ..telemetry.tracing import annotate

log = logging.getLogger(__name__)

# While the broker refuses the result, the worker holds the task and retries this way.
RESULT_PUBLISH_RETRY = Backoff(initial_seconds=0.5, max_seconds=5.0)


class TaskProcessor:
    """The handler of the tasks queue.

    ``backoff`` paces the calls to Service A; ``store_retry`` and ``publish_retry`` pace the
    retries while the task is held because Redis or the broker is away. ``lease`` (reject and
    serialize mode; None in parallel mode, which then costs no Redis round trip) gives each
    attempt the device to itself; ``turns`` (serialize mode) hands the device's turn over."""

    def __init__(
        self,
        *,
        store: TaskTransitions,
        broker: ResultPublisher,
        service_a: ServiceA,
        results_queue: str,
        attempts: int,
        backoff: Backoff,
        metrics: WorkerMetrics,
        store_retry: Backoff = STORE_RETRY,
        publish_retry: Backoff = RESULT_PUBLISH_RETRY,
        lease: DeviceLease | None = None,
        turns: TurnHandOver | None = None,
        attempt_log: AttemptLog | None = None,
        webhooks: WebhookQueue | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._service_a = service_a
        self._results_queue = results_queue
        self._attempts = attempts
        self._backoff = backoff
        self._metrics = metrics
        self._store_retry = store_retry
        self._publish_retry = publish_retry
        self._lease = lease
        self._turns = turns
        self._attempt_log = attempt_log  # the task's event log, for its event stream
        self._webhooks = webhooks  # a task met final: queue its webhook if still due

    async def __call__(self, delivery: InboundDelivery) -> None:
        with self._held():
            outcome = await self._handle(delivery)
        self._metrics.tasks.labels(outcome=outcome).inc()

    async def _call_service_a(self, task: TaskMessage) -> tuple[ServiceACallError | None, str]:
        """One call; returns the error instead of raising it, and the outcome's label. Times it."""
        started = time.perf_counter()
        outcome = "error"
        try:
            await self._service_a.configure(task.equipment_id, task.request)
            outcome = "success"
            return None, outcome
        except ServiceAFinalError as error:
            outcome = "not_found" if error.equipment_unknown else "rejected"
            return error, outcome
        except ServiceATransientError as error:
            return error, outcome
        finally:
            self._metrics.service_a_duration.labels(outcome=outcome).observe(
                time.perf_counter() - started, exemplar=exemplar()
            )

    async def _log_attempt(self, task: TaskMessage, attempt: int, outcome: str) -> None:
        """Best effort: an attempt event lost while Redis is away is logged, never waited for
        (the final status and its event are written together, and never lost)."""
        if self._attempt_log is None:
            return
        try:
            await self._attempt_log.record_attempt(task.task_id, attempt, outcome,
                                                  equipment_id=task.equipment_id)
        except StoreUnavailable as error:
            log.warning("attempt %d not recorded in the event log: %s", attempt, error,
                        extra={"task_id": task.task_id})

    def _device(self, task: TaskMessage) -> AbstractAsyncContextManager[float]:
        """The device to this attempt alone (reject mode), or nothing to wait for."""
        if self._lease is None:
            return nullcontext(0.0)
        return self._lease.hold(task.equipment_id, task.task_id)

    def _count_wait(self, waited: float, fields: dict[str, str]) -> None:
        if self._lease is None:
            return
        self._metrics.equipment_lease_wait.observe(waited)
        if waited > 0:
            self._metrics.equipment_lease_waits.inc()
            log.info("waited %.1fs for the device's lease", waited, extra=fields)

    @contextmanager
    def _held(self) -> Iterator[None]:
        self._metrics.in_flight.inc()
        try:
            yield
        finally:
            self._metrics.in_flight.dec()

    async def _handle(self, delivery: InboundDelivery) -> str:
        """Decide the message's fate; returns the outcome's metric label."""
        try:
            task = TaskMessage.decode(delivery.body)
        except InvalidMessage as error:
            log.error("dead-lettering a malformed task: %s", error,
                      extra={"message_id": delivery.message_id})
            await delivery.dead_letter("malformed")
            return "dead_lettered"
        fields = {"task_id": task.task_id, "equipment_id": task.equipment_id}
        annotate(**{"task.id": task.task_id, "equipment.id": task.equipment_id})
        transition = await self._mark_running(task)
        if transition.outcome is TransitionOutcome.MISSING:
            if not self._store.restorable(task.created_at):
                log.error("dead-lettering a task that has no record", extra=fields)
                await delivery.dead_letter("unknown_task")
                return "dead_lettered"
            restored = await until_available(
                lambda: self._store.restore(task.task_id, task.equipment_id, TaskStatus.RUNNING,
                                            created_at=task.created_at),
                what="restore a task's record", task_id=task.task_id, backoff=self._store_retry)
            if restored:
                log.warning("task had no record (lost in a Redis failover); restored it as "
                            "running from its message", extra=fields)
                transition = Transition(TransitionOutcome.APPLIED, None, task.created_at)
            else:  # written meanwhile by someone else: decide on it as on any record
                transition = await self._mark_running(task)
                if transition.outcome is TransitionOutcome.MISSING:
                    log.error("dead-lettering a task whose record vanished twice", extra=fields)
                    await delivery.dead_letter("unknown_task")
                    return "dead_lettered"
        if transition.callback_url is not None and self._webhooks is not None:
            # Final already, its webhook not queued yet (its first trigger was cut short).
            if not await self._webhooks.queue_held(delivery, task.task_id, transition.callback_url):
                return "handed_back"
        if transition.previous is TaskStatus.CANCELLED:
            log.info("task was cancelled before it ran; not calling Service A", extra=fields)
            if not await self._hand_over(delivery, task):
                return "handed_back"
            await delivery.ack()
            return "cancelled"
        if transition.previous is not None and transition.previous.is_final:
            log.info("redelivered task is already %s; not calling Service A again",
                     transition.previous, extra=fields)
            if not await self._hand_over(delivery, task):
                return "handed_back"
            await delivery.ack()
            return "already_final"

        log.info("task running", extra={**fields, "redelivered": delivery.redelivered})
        result = await self._provision(task)
        if not await self._publish_result(delivery, result):
            return "handed_back"
        await delivery.ack()
        return result.status.value

    async def _mark_running(self, task: TaskMessage) -> Transition:
        return await until_available(
            lambda: self._store.transition(task.task_id, TaskStatus.RUNNING,
                                           equipment_id=task.equipment_id),
            what="mark a task running",
            task_id=task.task_id,
            backoff=self._store_retry,
        )

    async def _hand_over(self, delivery: InboundDelivery, task: TaskMessage) -> bool:
        """Serialize mode: a task that will not run frees its device's turn before its ack."""
        if self._turns is None:
            return True
        return await self._turns.hand_over_held(delivery, task.equipment_id)

    async def _publish_result(self, delivery: InboundDelivery, result: ResultMessage) -> bool:
        """Publish the result, retrying while the task is still held: publishing twice is
        harmless (the status never goes back), calling Service A twice is not. If the task's
        channel closes meanwhile, aiormq usually cancels this handler outright; either way the
        broker hands the task to another worker."""
        return await retry_while_held(
            delivery,
            lambda: self._broker.publish(self._results_queue, result.encode(),
                                         message_id=result.task_id),
            retried=(BrokerUnavailable,), backoff=self._publish_retry,
            what="publishing the result", fields={"task_id": result.task_id},
        )

    async def _provision(self, task: TaskMessage) -> ResultMessage:
        """Call Service A until it succeeds, fails for good, or the attempts run out."""
        fields = {"task_id": task.task_id, "equipment_id": task.equipment_id}
        failure: FailureReason | None = None
        pauses = self._backoff.delays()
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                self._metrics.service_a_retries.inc()
            async with self._device(task) as waited:
                self._count_wait(waited, fields)
                error, outcome = await self._call_service_a(task)
            await self._log_attempt(task, attempt, outcome)
            if error is None:
                break
            if isinstance(error, ServiceAFinalError):
                failure = (
                    FailureReason.EQUIPMENT_NOT_FOUND
                    if error.equipment_unknown
                    else FailureReason.REJECTED_BY_SERVICE_A
                )
                log.info("Service A refused the task: %s", error.reason, extra=fields)
                break
            if attempt >= self._attempts:
                failure = FailureReason.SERVICE_A_UNAVAILABLE
                log.warning("giving up after %d attempts: %s", attempt, error.reason, extra=fields)
                break
            pause = next(pauses)
            log.info("attempt %d failed (%s), retrying in %.1fs", attempt, error.reason, pause,
                     extra=fields)
            await asyncio.sleep(pause)
        return ResultMessage(
            task_id=task.task_id,
            equipment_id=task.equipment_id,
            status=TaskStatus.FAILED if failure else TaskStatus.COMPLETED,
            failure=failure,
            attempts=attempt,
            finished_at=time.time(),
        )
