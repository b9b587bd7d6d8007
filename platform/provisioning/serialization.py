"""Serialize mode: a device's tasks run one after another, in creation order.

``EQUIPMENT_CONCURRENCY=serialize``. The device's turn is ``{prefix}equipment:{id}:active`` (the
task holding it) and the tasks waiting for it are ``{prefix}equipment:{id}:waiting``, a list of
ids in creation order, both written by the create's script (``TaskStore.create_in_turn``). A
task that finds the turn taken, or tasks waiting, is *parked*: Service B publishes its message
(with the device's credentials, which never go to Redis) to a queue of its own,
``topology.parking_queue`` — durable, no consumer, expiring after the task TTL — instead of the
tasks queue, so while it waits it holds no worker's prefetch slot and is never redelivered.

``hand_over(equipment_id)`` gives the turn to the next waiting task. It runs wherever a turn
ends, before the message that told of the end is acked: Service B's results consumer after a
final transition; the worker when it acks a task already final or cancelled (a cancelled task
frees its turn); Service B's DELETE after cancelling a pending task (best effort: the worker's
ack covers a crash). Steps:

1. ``TaskStore.advance`` (one Lua script): if the turn's task is pending or running and not
   parked, nothing to do. If it is parked (a hand-over that did not finish its move), move it.
   Otherwise pop waiting ids until one is still pending (cancelled, tombstoned or expired ones
   are skipped: their parking queues are deleted), give it the turn, move it; none: the turn is
   free.
2. The move: ``basic.get`` its message from its parking queue (retried while the queue is empty
   or not declared yet, up to twice ``PUBLISH_TIMEOUT_SECONDS``: its create may still be
   publishing), publish the body and headers (the trace context) to the tasks queue with
   confirms, clear ``parked``, ack the get, delete the parking queue. When nothing arrives in
   time the create never finished publishing and its client got 500: the task becomes a
   ``failed`` tombstone (``not_queued``, only from pending) and the turn goes on (step 1 again).

Every step is idempotent and its trigger is acked only afterwards, so a crash anywhere means a
redelivery that runs the hand-over again; the message got but not acked goes back to its parking
queue when the channel closes. A duplicated move (a crash after the publish, before the ack) puts
the task on the tasks queue twice: harmless, as any redelivery (the never-backwards transition
acks the second without calling Service A, and the worker's device lease keeps calls apart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from .backoff import Backoff
from .collaborators import InboundDelivery
from .errors import BrokerUnavailable
from .held_retry import retry_while_held
from .messaging.broker import FetchedMessage
from .messaging.topology import parking_queue
from .models import TaskStatus
from .settings import BrokerSettings
from .store import Advance, AdvanceOutcome, Transition, until_available
from .telemetry.metrics import TurnMetrics, exemplar
from .telemetry.tracing import annotate

log = logging.getLogger(__name__)

# Between two looks at a parking queue that has no message yet.
FETCH_RETRY = Backoff(initial_seconds=0.05, max_seconds=0.5)
# While the broker is away and the trigger is still held.
BROKER_RETRY = Backoff(initial_seconds=0.5, max_seconds=5.0)


class TurnStore(Protocol):
    """What a hand-over needs of the task store (``TaskStore``)."""

    async def advance(self, equipment_id: str) -> Advance: ...

    async def parked(self, task_id: str, equipment_id: str | None = None
                     ) -> tuple[TaskStatus | None, bool]: ...

    async def unpark(self, task_id: str, equipment_id: str | None = None) -> None: ...

    async def tombstone(self, task_id: str, equipment_id: str | None = None) -> Transition: ...


class ParkingBroker(Protocol):
    """What a hand-over needs of the broker (``Broker``)."""

    async def publish(self, queue: str, body: bytes, *, message_id: str,
                      headers: Mapping[str, Any] | None = None) -> None: ...

    async def fetch(self, queue: str) -> FetchedMessage | None: ...

    async def delete_queue(self, queue: str) -> None: ...


class Serializer:
    """Hands a device's turn over to its next waiting task (see the module docstring)."""

    def __init__(self, store: TurnStore, broker: ParkingBroker, *, tasks_queue: str,
                 publish_timeout_seconds: float, metrics: TurnMetrics | None = None,
                 fetch_retry: Backoff = FETCH_RETRY) -> None:
        self._store = store
        self._broker = broker
        self._tasks_queue = tasks_queue
        self._arrival_seconds = 2 * publish_timeout_seconds
        self._metrics = metrics
        self._fetch_retry = fetch_retry

    @classmethod
    def over(cls, store: TurnStore, broker: ParkingBroker, settings: BrokerSettings,
             metrics: TurnMetrics | None = None) -> Serializer:
        """The hand-overs of a process (Service B or a worker) over its store and broker."""
        return cls(store, broker, tasks_queue=settings.tasks_queue,
                   publish_timeout_seconds=settings.publish_timeout_seconds, metrics=metrics)

    async def hand_over(self, equipment_id: str) -> str | None:
        """Make sure the device's turn is held by a task whose message is on the tasks queue,
        or free when none waits; returns the task holding the turn (None: free). Raises
        ``BrokerUnavailable`` (the caller keeps its trigger and retries); Redis being away is
        waited out. Ends: each round that goes on made one waiting task final."""
        while True:
            step = await until_available(lambda: self._store.advance(equipment_id),
                                         what="hand a device's turn over", task_id=equipment_id)
            for skipped in step.skipped:
                await self._broker.delete_queue(parking_queue(self._tasks_queue, skipped))
            if step.outcome is not AdvanceOutcome.MOVE:
                return step.task_id or None
            if await self._move(step, equipment_id):
                return step.task_id

    async def hand_over_held(self, delivery: InboundDelivery, equipment_id: str) -> bool:
        """``hand_over`` for a handler holding its trigger message: retried while the broker is
        away and the message is still held; False when its channel is gone (the broker
        redelivers the trigger, and the hand-over runs again then)."""
        return await retry_while_held(
            delivery, lambda: self.hand_over(equipment_id), retried=(BrokerUnavailable,),
            backoff=BROKER_RETRY, what="handing the turn over",
            fields={"equipment_id": equipment_id},
        )

    async def _move(self, step: Advance, equipment_id: str) -> bool:
        """Move the turn's parked message to the tasks queue. True when the task is on the
        tasks queue now (moved here or by another hand-over); False when it no longer needs
        the turn (final or gone, or its message never arrived: tombstoned)."""
        task_id = step.task_id
        fields = {"task_id": task_id}
        queue = parking_queue(self._tasks_queue, task_id)
        deadline = time.monotonic() + self._arrival_seconds
        pauses = self._fetch_retry.delays()
        while (fetched := await self._broker.fetch(queue)) is None:
            status, parked = await until_available(lambda: self._store.parked(task_id, equipment_id),
                                                   what="read a parked task", task_id=task_id)
            if status in (TaskStatus.PENDING, TaskStatus.RUNNING) and not parked:
                return True  # another hand-over moved it
            if status is not TaskStatus.PENDING:  # cancelled, final or gone meanwhile
                await self._broker.delete_queue(queue)
                return False
            if time.monotonic() >= deadline:
                await self._tombstone(task_id, equipment_id)
                await self._broker.delete_queue(queue)
                return False
            await asyncio.sleep(next(pauses))
        try:
            await self._broker.publish(self._tasks_queue, fetched.body, message_id=task_id,
                                       headers=fetched.headers)
            await until_available(lambda: self._store.unpark(task_id, equipment_id), what="unpark a task",
                                  task_id=task_id)
            await fetched.settle(delete_queue=queue)
        finally:
            await fetched.release()
        waited = max(time.time() - step.created_at, 0.0) if step.created_at else 0.0
        annotate(**{"equipment.handed_over": task_id, "equipment.wait_seconds": f"{waited:.3f}"})
        if self._metrics is not None:
            self._metrics.handed_over.inc()
            self._metrics.wait.observe(waited, exemplar=exemplar())
        log.info("waiting task given its device's turn after %.1fs", waited,
                 extra={**fields, "waiting": step.waiting})
        return True

    async def _tombstone(self, task_id: str, equipment_id: str) -> None:
        transition = await until_available(
            lambda: self._store.tombstone(task_id, equipment_id),
            what="fail a task that never arrived", task_id=task_id)
        log.warning("waiting task's message never reached its parking queue (its create "
                    "answered 500): %s", transition.outcome.value, extra={"task_id": task_id})
        if self._metrics is not None:
            self._metrics.not_queued.inc()
