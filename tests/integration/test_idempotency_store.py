"""The idempotency-key store against the real Redis: claim, confirm, replay, release, races."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from provisioning.idempotency import IdempotencyStore, KeyRecord, KeyState
from provisioning.idempotency_key import scope_digest
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore

TTL_SECONDS = 600
CLAIM_SECONDS = 30
FINGERPRINT = "sha256:aaaa"


@pytest.fixture
async def task_store(redis_settings: RedisSettings) -> AsyncIterator[TaskStore]:
    async with TaskStore(redis_settings) as store:
        yield store


@pytest.fixture
def keys(task_store: TaskStore, redis_settings: RedisSettings) -> IdempotencyStore:
    return IdempotencyStore(task_store.redis, key_prefix=redis_settings.key_prefix,
                            ttl_seconds=TTL_SECONDS, claim_seconds=CLAIM_SECONDS)


@pytest.fixture
def redis(task_store: TaskStore) -> aioredis.Redis:
    return task_store.redis


def new_task() -> str:
    return str(uuid.uuid4())


async def claimed(keys: IdempotencyStore) -> tuple[str, str]:
    """A new scope, claimed by a new task: (scope, task id)."""
    scope, task_id = scope_digest("-", "CPE123456", str(uuid.uuid4())), new_task()
    assert await keys.claim(scope, FINGERPRINT, task_id) is None
    return scope, task_id


async def holder(keys: IdempotencyStore, scope: str) -> KeyRecord | None:
    """What another request with the same key and body is told now."""
    return await keys.claim(scope, FINGERPRINT, new_task())


async def test_a_free_key_is_claimed_with_the_short_claim_ttl(
    keys: IdempotencyStore, redis: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    scope, task_id = await claimed(keys)
    key = keys.key(scope)
    assert key == f"{redis_settings.key_prefix}idempotency:{scope}"
    assert KeyRecord.decode(str(await redis.get(key))) == KeyRecord(KeyState.CLAIMED, FINGERPRINT, task_id)
    assert 0 < await redis.ttl(key) <= CLAIM_SECONDS


async def test_a_claimed_key_answers_the_claim_that_holds_it_whatever_the_body(
    keys: IdempotencyStore
) -> None:
    scope, first = await claimed(keys)
    assert await keys.claim(scope, "sha256:other", new_task()) == KeyRecord(
        KeyState.CLAIMED, FINGERPRINT, first)


async def test_a_confirmed_key_is_queued_for_the_full_ttl_and_replays_its_task(
    keys: IdempotencyStore, redis: aioredis.Redis
) -> None:
    scope, first = await claimed(keys)
    assert await keys.confirm(scope, FINGERPRINT, first) is True
    assert CLAIM_SECONDS < await redis.ttl(keys.key(scope)) <= TTL_SECONDS
    assert await holder(keys, scope) == KeyRecord(KeyState.QUEUED, FINGERPRINT, first)


async def test_confirm_does_not_overwrite_a_key_another_task_holds(keys: IdempotencyStore) -> None:
    scope, first = await claimed(keys)
    assert await keys.confirm(scope, FINGERPRINT, new_task()) is False
    assert await holder(keys, scope) == KeyRecord(KeyState.CLAIMED, FINGERPRINT, first)


async def test_confirm_takes_back_a_claim_that_expired(
    keys: IdempotencyStore, redis: aioredis.Redis
) -> None:
    scope, task_id = await claimed(keys)
    await redis.delete(keys.key(scope))  # as if the claim's TTL ran out mid-create
    assert await keys.confirm(scope, FINGERPRINT, task_id) is True
    assert await holder(keys, scope) == KeyRecord(KeyState.QUEUED, FINGERPRINT, task_id)


async def test_release_frees_the_key_for_a_retry(keys: IdempotencyStore, redis: aioredis.Redis) -> None:
    scope, task_id = await claimed(keys)
    assert await keys.release(scope, task_id) is True
    assert await redis.exists(keys.key(scope)) == 0
    assert await holder(keys, scope) is None


async def test_release_leaves_a_key_another_task_holds(keys: IdempotencyStore) -> None:
    scope, first = await claimed(keys)
    assert await keys.release(scope, new_task()) is False
    assert await holder(keys, scope) == KeyRecord(KeyState.CLAIMED, FINGERPRINT, first)


async def test_of_fifty_concurrent_claims_of_one_key_exactly_one_wins(keys: IdempotencyStore) -> None:
    scope = scope_digest("-", "CPE123456", str(uuid.uuid4()))
    task_ids = [new_task() for _ in range(50)]
    answers = await asyncio.gather(*(keys.claim(scope, FINGERPRINT, task_id) for task_id in task_ids))
    winners = [task_id for task_id, held in zip(task_ids, answers, strict=True) if held is None]
    assert len(winners) == 1
    assert {held.task_id for held in answers if held is not None} == set(winners)


async def test_a_key_record_holds_only_state_fingerprint_and_task_id(
    keys: IdempotencyStore, redis: aioredis.Redis
) -> None:
    scope, task_id = await claimed(keys)
    assert json.loads(str(await redis.get(keys.key(scope)))) == {
        "state": "claimed", "fingerprint": FINGERPRINT, "taskId": task_id}
