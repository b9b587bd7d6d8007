"""Requests waiting for a task's events, woken by one Redis subscription per process.

Every change of a task is announced on the events channel by the same script that makes it
(``store._EMIT``). A Service B process subscribes once, on a connection of its own, and
wakes the local waiters of the task a notice names: never a blocking Redis connection per
waiter. The rules that make it lose nothing:

- a waiter registers (``watch``) before it reads the task, so a change that lands between the
  read and the wait still wakes it;
- when the subscription is (re)established, every waiter is woken to read again: a notice
  published while it was down is then caught up from the record or the event log;
- pub/sub may still drop a notice (a slow subscriber is cut off by Redis, which the loop sees
  as a lost connection); a long-poll reads the record again when its time is up, whatever.

Waiters (long-polls and event streams) are bounded per process by ``API_MAX_WAITERS``: past
it, a new one is refused with ``ServiceOverloaded`` (503 with ``Retry-After``). A waiter is
released when its block ends, which includes its client hanging up (Sanic cancels the
handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio.client import PubSub

from ..backoff import Backoff
from ..errors import ServiceOverloaded
from ..redis_connection import subscriber_client
from ..settings import RedisSettings
from ..store import REDIS_UNAVAILABLE
from ..task_events import FINAL_TYPES, parse_notice
from ..telemetry.metrics import CompletionMetrics

log = logging.getLogger(__name__)

RESUBSCRIBE = Backoff(initial_seconds=0.2, max_seconds=5.0)
POLL_SECONDS = 1.0  # how long one read of the subscription waits for a notice
HEALTH_CHECK_SECONDS = 10  # the idle subscription is pinged this often, so a dead one shows
RESYNC = "resync"  # the wake-up of every waiter after the subscription came back


class Watch:
    """One waiter's wake-up: set by a notice for its task (only final ones with
    ``final_only``) or by a resync."""

    __slots__ = ("_final_only", "_woken")

    def __init__(self, *, final_only: bool) -> None:
        self._final_only = final_only
        self._woken = asyncio.Event()

    def notify(self, kind: str) -> None:
        if not self._final_only or kind in FINAL_TYPES or kind == RESYNC:
            self._woken.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up; True when woken (then re-armed)."""
        if not self._woken.is_set():
            try:
                await asyncio.wait_for(self._woken.wait(), max(timeout, 0.0))
            except TimeoutError:
                return False
        self._woken.clear()
        return True


class Waiters:
    """The process's subscription to task events and the waiters it wakes."""

    def __init__(self, settings: RedisSettings, channel: str, *, limit: int,
                 metrics: CompletionMetrics, client_name: str = "service-b-task-events") -> None:
        self._settings = settings
        self._channel = channel
        self.limit = limit
        self._metrics = metrics
        self._watches: dict[str, set[Watch]] = {}
        self.count = 0
        self.subscribed = False  # the subscription is up (also the metric's gauge)
        self.client_name = client_name  # the subscription's name in Redis' CLIENT LIST
        self._listener: asyncio.Task[None] | None = None
        # Its own client and connection: a subscribed connection serves nothing else. No
        # command retry inside redis-py, so a lost connection reaches ``_listen``, which
        # subscribes again and wakes everyone.
        # With Sentinel it is the master's (``redis_connection``): a failover drops it, and the
        # listener subscribes again on the new master. On a cluster, on any node (classic
        # pub/sub reaches every node), re-chosen when it is lost.
        self._client = subscriber_client(settings, client_name=client_name,
                                         health_check_seconds=HEALTH_CHECK_SECONDS)

    def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="task-events")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self._client.aclose()
        self._wake_all()

    @contextlib.contextmanager
    def watch(self, task_id: str, *, final_only: bool) -> Iterator[Watch]:
        """Register a waiter for ``task_id`` for the duration of the block."""
        if self.count >= self.limit:
            self._metrics.refused.inc()
            raise ServiceOverloaded()
        watch = Watch(final_only=final_only)
        self._watches.setdefault(task_id, set()).add(watch)
        self.count += 1
        try:
            yield watch
        finally:
            self.count -= 1
            watches = self._watches.get(task_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[task_id]

    def _set_subscribed(self, up: bool) -> None:
        self.subscribed = up
        self._metrics.subscribed.set(1 if up else 0)

    def _dispatch(self, payload: str) -> None:
        self._metrics.notices.inc()
        notice = parse_notice(payload)
        if notice is None:
            return
        task_id, kind = notice
        for watch in self._watches.get(task_id, ()):
            watch.notify(kind)

    def _wake_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.notify(RESYNC)

    async def _listen(self) -> None:
        pauses = RESUBSCRIBE.delays()
        while True:
            pubsub: PubSub | None = None
            try:
                # On a cluster, on a node chosen afresh each time (``redis_connection``).
                pubsub = await self._client.pubsub()
                await pubsub.subscribe(self._channel)
                self._set_subscribed(True)
                pauses = RESUBSCRIBE.delays()
                self._wake_all()  # catch up on whatever was announced while unsubscribed
                while True:
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never stop listening: waiters would only time out
                pause = next(pauses)
                if isinstance(error, REDIS_UNAVAILABLE):
                    log.warning("task events subscription lost, subscribing again in %.1fs: %r",
                                pause, error)
                else:
                    log.error("unexpected error in the task events subscription, subscribing "
                              "again in %.1fs", pause, exc_info=error)
            finally:
                self._set_subscribed(False)
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_UNAVAILABLE):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(pause)
