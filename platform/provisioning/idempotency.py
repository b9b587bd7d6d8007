"""The idempotency-key store: claim a key, replay its first answer, release it.

One record per scoped key, ``{prefix}idempotency:{sha256(caller, equipment id, key)}``, holding
JSON ``{"state", "fingerprint", "taskId"}`` and never a credential (``idempotency_key`` says
what the fingerprint is made of). The life of a key, after the IETF Idempotency-Key draft and
Stripe:

- **claimed**: one atomic ``SET NX EX`` (in a script that returns the record already there
  instead), taken after the request was validated, with a short TTL (``claim_seconds``), so a
  Service B that dies mid-create blocks the key only briefly. Of many concurrent first
  requests exactly one wins the claim; the others see the claim.
- **queued**: once the broker confirmed the task, the record turns ``queued`` and lives
  ``IDEMPOTENCY_TTL_SECONDS`` (compare-and-set on the task id: a claim that expired and was
  taken by another request is not overwritten).
- **released**: a create that did not end in 200 deletes the record, only if it still holds
  its own task id (compare-and-delete), so a retry can create.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

import redis.asyncio as aioredis

from . import names
from .errors import StoreUnavailable
from .store import REDIS_UNAVAILABLE

# KEYS[1] the key's record; ARGV: the claim's record, its TTL. Returns nil when the claim was
# taken, else the record that holds the key.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""
# KEYS[1] the key's record; ARGV: the queued record, its task id, the TTL. Applies when the key
# is free or still holds this task (a claim that expired is taken back); 1 when applied.
_CONFIRM = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['taskId'] ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""
# KEYS[1] the key's record; ARGV[1] the task id. Deletes the record only if it holds that task.
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['taskId'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class KeyState(enum.StrEnum):
    CLAIMED = "claimed"  # the first request with the key is between its claim and its answer
    QUEUED = "queued"  # the first request was answered 200 with ``task_id``


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What Redis holds for one scoped key."""

    state: KeyState
    fingerprint: str
    task_id: str

    def encode(self) -> str:
        return json.dumps({"state": self.state.value, "fingerprint": self.fingerprint,
                           "taskId": self.task_id}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> KeyRecord:
        document = json.loads(raw)
        return cls(KeyState(document["state"]), document["fingerprint"], document["taskId"])


class IdempotencyStore:
    """Claims, confirms and releases scoped keys. Shares a Redis client it does not close."""

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, ttl_seconds: int,
                 claim_seconds: int) -> None:
        self._prefix = f"{key_prefix}{names.IDEMPOTENCY_KEY}"
        self.ttl_seconds = ttl_seconds
        self.claim_seconds = claim_seconds
        self._claim = redis.register_script(_CLAIM)
        self._confirm = redis.register_script(_CONFIRM)
        self._release = redis.register_script(_RELEASE)

    def key(self, scope: str) -> str:
        """The record's Redis key; ``scope`` is ``idempotency_key.scope_digest``'s hash."""
        return f"{self._prefix}{scope}"

    async def claim(self, scope: str, fingerprint: str, task_id: str) -> KeyRecord | None:
        """Claim the key for ``task_id``: None when claimed, else the record that holds it."""
        record = KeyRecord(KeyState.CLAIMED, fingerprint, task_id)
        try:
            held = await self._claim(keys=[self.key(scope)],
                                     args=[record.encode(), self.claim_seconds])
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot claim an idempotency key: {error}") from error
        return None if held is None else KeyRecord.decode(held)

    async def confirm(self, scope: str, fingerprint: str, task_id: str) -> bool:
        """Record that ``task_id`` was queued; False when the key now holds another task."""
        record = KeyRecord(KeyState.QUEUED, fingerprint, task_id)
        try:
            applied = await self._confirm(keys=[self.key(scope)],
                                          args=[record.encode(), task_id, self.ttl_seconds])
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot confirm an idempotency key: {error}") from error
        return bool(applied)

    async def release(self, scope: str, task_id: str) -> bool:
        """Free the key if it still holds ``task_id``; True when it did."""
        try:
            released = await self._release(keys=[self.key(scope)], args=[task_id])
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot release an idempotency key: {error}") from error
        return bool(released)
