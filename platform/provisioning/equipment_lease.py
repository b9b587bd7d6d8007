"""A device's lease: at most one Service A call per device at a time, across every worker.

In ``reject`` and ``serialize`` mode (``EQUIPMENT_CONCURRENCY``) a worker holds
``{prefix}lease:{equipment_id}`` (the equipment id in braces: the device's hash tag) around
every Service A attempt. The lease is a Redis string holding the holder's token (task id
and a fresh uuid per attempt) with an expiry of
``SERVICE_A_TIMEOUT_SECONDS + EQUIPMENT_LEASE_MARGIN_SECONDS``, set just before the call starts.
A worker that dies cannot tell Service A to stop, so its lease is simply left to expire: Service
A gives up a call no later than its client's timeout (the assumption this rests on), and the
margin covers the time between setting the lease and sending the request, and the network. A
live holder never renews: its lease already outlasts its own call. It releases the lease after
the attempt with a compare-and-delete, so a holder whose lease expired can never delete its successor's.

An attempt that does not finish (the handler is cancelled mid-call: a drain that ran out of time,
a lost channel) does not release either: the call may still be running at Service A, exactly as
a dead worker's would, so the lease runs out by itself.

A task that finds the lease held keeps its message (one prefetch slot) and waits: it reads the
lease's remaining time and sleeps at most that long (the one ``Backoff``, capped at the
remaining time), so it retries promptly when a live holder releases early and never sleeps past
the expiry. Redis being away holds the message too (``store.until_available``).

Serialize mode uses this lease unchanged, per attempt: order comes from the device's turn
(``serialization``), which puts only one task of a device on the tasks queue at a time; the lease
keeps a redelivered task's call from overlapping the call its dead worker left running.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from . import names
from .backoff import Backoff
from .errors import StoreUnavailable
from .settings import WorkerSettings
from .store import REDIS_UNAVAILABLE, STORE_RETRY, until_available

# Between two looks at a held lease; never longer than the lease has left.
LEASE_RETRY = Backoff(initial_seconds=0.05, max_seconds=1.0)

# KEYS[1] the lease; ARGV: our token, the lease in ms. Takes the lease when it is free (or is
# already ours: a retried take whose first reply was lost) and returns 0; otherwise returns the
# holder's remaining milliseconds. A lease without an expiry (never one of ours) gets one, so no
# device can be blocked for longer than one lease.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(ARGV[2])
end
return math.max(left, 1)
"""

# KEYS[1] the lease; ARGV[1] our token. Deletes it only while it is still ours; 1 if it was.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class EquipmentLease:
    """The per-device leases of one worker process, over the store's Redis client."""

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, lease_seconds: float,
                 retry: Backoff = LEASE_RETRY, store_retry: Backoff = STORE_RETRY) -> None:
        self._key_prefix = key_prefix
        self._lease_ms = math.ceil(lease_seconds * 1000)
        self._retry = retry
        self._store_retry = store_retry
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    @classmethod
    def for_worker(cls, redis: aioredis.Redis, settings: WorkerSettings) -> EquipmentLease:
        """A lease that outlasts one call: the call timeout plus the margin."""
        return cls(redis, key_prefix=settings.redis.key_prefix,
                   lease_seconds=settings.service_a_timeout_seconds
                   + settings.equipment_lease_margin_seconds)

    def key(self, equipment_id: str) -> str:
        # The device's hash tag, like every key of the device (``store``).
        return f"{self._key_prefix}{names.LEASE_KEY}{{{equipment_id}}}"

    @asynccontextmanager
    async def hold(self, equipment_id: str, task_id: str) -> AsyncIterator[float]:
        """Hold the device's lease for one attempt; yields how long it waited for it (seconds).
        Released when the block finishes, left to expire when it is interrupted."""
        key = self.key(equipment_id)
        token = f"{task_id}:{uuid.uuid4().hex}"
        waited = await self._take(key, token, task_id)
        yield waited
        # Not reached when the block raised or was cancelled: see the module docstring.
        await until_available(lambda: self._give_back(key, token), what="release a device's lease",
                              task_id=task_id, backoff=self._store_retry)

    async def _take(self, key: str, token: str, task_id: str) -> float:
        """Take the lease, waiting while another holds it: seconds waited (0.0 if it was free)."""
        started = time.monotonic()
        pauses = self._retry.delays()
        waited = False
        while True:
            left_ms = await until_available(lambda: self._try_take(key, token),
                                            what="take a device's lease", task_id=task_id,
                                            backoff=self._store_retry)
            if left_ms == 0:
                return time.monotonic() - started if waited else 0.0
            waited = True
            await asyncio.sleep(min(next(pauses), left_ms / 1000))

    async def _try_take(self, key: str, token: str) -> int:
        try:
            return int(await self._acquire(keys=[key], args=[token, self._lease_ms]))
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot take a device's lease: {error}") from error

    async def _give_back(self, key: str, token: str) -> bool:
        try:
            return bool(await self._release(keys=[key], args=[token]))
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot release a device's lease: {error}") from error
