"""The task store: task records in Redis hashes, with transitions that never go backwards.

A record is ``{prefix}task:{uuid}`` holding equipment_id, status, failure and timestamps,
never a credential. Every write renews the TTL, so a task waiting in a long queue outlives
its wait. A transition runs as one Lua script: it applies only when the new status ranks
above the current one (pending < running < completed | failed), so a late ``running`` or a
duplicated result cannot overwrite a final status.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import AbstractBackoff
from redis.exceptions import RedisError

from . import names
from .backoff import Backoff
from .errors import StoreUnavailable
from .models import FailureReason, TaskRecord, TaskStatus
from .settings import RedisSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a Redis call raises when Redis is away: the client's own errors, and, from uvloop, a
# RuntimeError when a connect races the server closing ("unable to perform operation on
# <TCPTransport closed=True>").
_UNAVAILABLE = (RedisError, OSError, RuntimeError)

# While Redis is away, a consumer holding a message retries its store operation this way.
STORE_RETRY = Backoff(initial_seconds=0.2, max_seconds=5.0)
# redis-py's own retry re-runs one command that met a dead pooled connection, at once.
COMMAND_RETRY = Backoff(initial_seconds=0.05, max_seconds=0.5)
COMMAND_RETRIES = 2

STATUS_RANK = {
    TaskStatus.PENDING: 0,
    TaskStatus.RUNNING: 1,
    TaskStatus.COMPLETED: 2,
    TaskStatus.FAILED: 2,
    TaskStatus.CANCELLED: 2,
}
# The ranks as the Lua script gets them: the one definition serves both sides.
_RANKS = [item for status, rank in STATUS_RANK.items() for item in (status.value, rank)]

# KEYS[1] the task; ARGV: new status, its rank, failure ("" for none), now, ttl, is_final,
# the status the task must have now ("" for any), then the ranks as status/rank pairs.
# Returns {outcome, status before, created_at}: outcome is "applied", "stale" or "missing".
_TRANSITION = """
local current, created = unpack(redis.call('HMGET', KEYS[1], 'status', 'created_at'))
if not current then return {'missing', '', ''} end
if ARGV[7] ~= '' and current ~= ARGV[7] then return {'stale', current, created} end
local rank = {}
for i = 8, #ARGV, 2 do rank[ARGV[i]] = tonumber(ARGV[i + 1]) end
if tonumber(ARGV[2]) <= rank[current] then return {'stale', current, created} end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'failure', ARGV[3]) end
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {'applied', current, created}
"""


class TransitionOutcome(enum.StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the task already is at or past the requested status
    MISSING = "missing"  # no such task (never created, deleted or expired)


@dataclass(frozen=True, slots=True)
class Transition:
    outcome: TransitionOutcome
    previous: TaskStatus | None
    created_at: float | None = None


class RedisBackoff(AbstractBackoff):
    """The platform's ``Backoff`` in redis-py's interface, for its per-command retry."""

    def __init__(self, policy: Backoff) -> None:
        self._policy = policy

    def compute(self, failures: int) -> float:
        return self._policy.delay(failures)


class TaskStore:
    """Create, read and transition task records. Owns its Redis connection pool."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        # A blocking pool makes a burst of callers wait for a free connection instead of
        # failing with "Too many connections" as the default pool does. The retry policy lets a
        # command that meets a connection Redis closed (a restart) reconnect and go through,
        # instead of failing once for every stale connection in the pool.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.url,
            decode_responses=True,
            max_connections=settings.max_connections,
            timeout=settings.socket_timeout_seconds,
            socket_timeout=settings.socket_timeout_seconds,
            socket_connect_timeout=settings.socket_timeout_seconds,
            health_check_interval=30,
            retry=Retry(RedisBackoff(COMMAND_RETRY), retries=COMMAND_RETRIES),
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._transition = self._redis.register_script(_TRANSITION)
        self._closed = False

    async def __aenter__(self) -> TaskStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._redis.aclose()

    def key(self, task_id: str) -> str:
        return f"{self._settings.key_prefix}{names.TASK_KEY}{task_id}"

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"Redis ping failed: {error}") from error

    async def create(self, task_id: str, equipment_id: str, *, now: float | None = None) -> float:
        """Write a new ``pending`` record; returns its creation time."""
        created = time.time() if now is None else now
        key = self.key(task_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={
                        "equipment_id": equipment_id,
                        "status": TaskStatus.PENDING.value,
                        "created_at": repr(created),
                        "updated_at": repr(created),
                    },
                )
                pipe.expire(key, self._settings.task_ttl_seconds)
                await pipe.execute()
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot create task: {error}") from error
        return created

    async def delete(self, task_id: str) -> None:
        try:
            await self._redis.delete(self.key(task_id))
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot delete task: {error}") from error

    async def get(self, task_id: str) -> TaskRecord | None:
        try:
            fields: dict[str, str] = await self._redis.hgetall(self.key(task_id))  # type: ignore[assignment]
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read task: {error}") from error
        if not fields or "status" not in fields:
            return None
        return _record(task_id, fields)

    async def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        """``get`` for many tasks in one pipelined round trip (not a transaction: each record
        is read as it is at that moment), in the order asked; None for a task there is not."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for task_id in task_ids:
                    pipe.hgetall(self.key(task_id))
                rows: list[dict[str, str]] = await pipe.execute()
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read tasks: {error}") from error
        return [_record(task_id, fields) if fields and "status" in fields else None
                for task_id, fields in zip(task_ids, rows, strict=True)]

    async def transition(
        self,
        task_id: str,
        status: TaskStatus,
        failure: FailureReason | None = None,
        *,
        now: float | None = None,
        only_from: TaskStatus | None = None,
    ) -> Transition:
        """Move a task forward to ``status``; never backwards, atomically. With ``only_from``,
        only when the task is in exactly that status now (else the outcome is STALE)."""
        args: list[Any] = [
            status.value,
            STATUS_RANK[status],
            failure.value if failure else "",
            repr(time.time() if now is None else now),
            self._settings.task_ttl_seconds,
            "1" if status.is_final else "0",
            only_from.value if only_from else "",
            *_RANKS,
        ]
        try:
            outcome, previous, created = await self._transition(keys=[self.key(task_id)], args=args)
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot transition task: {error}") from error
        return Transition(
            TransitionOutcome(outcome),
            TaskStatus(previous) if previous else None,
            float(created) if created else None,
        )


def _record(task_id: str, fields: dict[str, str]) -> TaskRecord:
    failure = fields.get("failure")
    finished = fields.get("finished_at")
    return TaskRecord(
        task_id=task_id,
        equipment_id=fields.get("equipment_id", ""),
        status=TaskStatus(fields["status"]),
        created_at=float(fields.get("created_at", 0.0)),
        updated_at=float(fields.get("updated_at", 0.0)),
        failure=FailureReason(failure) if failure else None,
        finished_at=float(finished) if finished else None,
    )


async def until_available(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    task_id: str,
    backoff: Backoff = STORE_RETRY,
) -> T:
    """Run a store operation, retrying with backoff for as long as Redis is unavailable.

    Used by consumers that hold a message: holding it (rather than requeueing it) keeps it
    off the delivery limit, and if the process stops meanwhile the broker redelivers it.
    """
    pauses = backoff.delays()
    while True:
        try:
            return await operation()
        except StoreUnavailable as error:
            pause = next(pauses)
            log.warning("cannot %s yet, retrying in %.1fs: %s", what, pause, error,
                        extra={"task_id": task_id})
            await asyncio.sleep(pause)
