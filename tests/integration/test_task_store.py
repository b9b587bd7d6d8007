"""The task store against the real Redis: records, TTLs, and transitions that never go back."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import redis.asyncio as aioredis

from provisioning.errors import StoreUnavailable
from provisioning.models import FailureReason, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore, TransitionOutcome


def new_id() -> str:
    return str(uuid.uuid4())


async def test_a_new_task_is_pending_with_the_configured_ttl(
    store: TaskStore, raw_redis: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    task_id = new_id()
    created = await store.create(task_id, "abcdef1")
    record = await store.get(task_id)
    assert record is not None
    assert (record.status, record.equipment_id, record.created_at) == (
        TaskStatus.PENDING, "abcdef1", created)
    ttl = await raw_redis.ttl(store.key(task_id, "abcdef1"))
    assert redis_settings.task_ttl_seconds - 5 < ttl <= redis_settings.task_ttl_seconds


async def test_each_transition_renews_the_ttl(store: TaskStore, raw_redis: aioredis.Redis) -> None:
    task_id = new_id()
    await store.create(task_id, "abcdef1")
    await raw_redis.expire(store.key(task_id, "abcdef1"), 100)
    await store.transition(task_id, TaskStatus.RUNNING)
    assert await raw_redis.ttl(store.key(task_id, "abcdef1")) > 100


async def test_a_task_is_indexed_by_its_id_for_as_long_as_its_record_lives(
    store: TaskStore, raw_redis: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    task_id = new_id()
    await store.create(task_id, "abcdef1")
    assert await raw_redis.get(store.device_key(task_id)) == "abcdef1"
    await raw_redis.expire(store.device_key(task_id), 100)
    await store.transition(task_id, TaskStatus.RUNNING)
    assert await raw_redis.ttl(store.device_key(task_id)) <= 100  # renewed only when final
    await store.transition(task_id, TaskStatus.COMPLETED)
    ttl = await raw_redis.ttl(store.device_key(task_id))
    assert redis_settings.task_ttl_seconds - 5 < ttl <= redis_settings.task_ttl_seconds


async def test_creates_and_transitions_work_on_after_redis_forgot_its_scripts(
    store: TaskStore, raw_redis: aioredis.Redis
) -> None:
    """A restarted or failed-over Redis has no scripts cached: the create and the final
    transition (sent with its index renewal in one round trip) load them again."""
    task_id = new_id()
    await raw_redis.script_flush()
    await store.create(task_id, "abcdef1")
    await raw_redis.script_flush()
    assert (await store.transition(task_id, TaskStatus.RUNNING)).outcome is TransitionOutcome.APPLIED
    await raw_redis.script_flush()
    done = await store.transition(task_id, TaskStatus.COMPLETED)
    assert (done.outcome, done.previous) == (TransitionOutcome.APPLIED, TaskStatus.RUNNING)
    record = await store.get(task_id)
    assert record is not None and record.status is TaskStatus.COMPLETED
    assert await raw_redis.get(store.device_key(task_id)) == "abcdef1"


async def test_an_unknown_task_reads_as_none_and_cannot_transition(store: TaskStore) -> None:
    task_id = new_id()
    assert await store.get(task_id) is None
    transition = await store.transition(task_id, TaskStatus.COMPLETED)
    assert transition.outcome is TransitionOutcome.MISSING


async def test_status_moves_forward_and_records_when_it_finished(store: TaskStore) -> None:
    task_id = new_id()
    await store.create(task_id, "abcdef1")
    assert (await store.transition(task_id, TaskStatus.RUNNING)).outcome is TransitionOutcome.APPLIED
    done = await store.transition(task_id, TaskStatus.FAILED, FailureReason.EQUIPMENT_NOT_FOUND)
    assert done.outcome is TransitionOutcome.APPLIED
    assert done.previous is TaskStatus.RUNNING
    record = await store.get(task_id)
    assert record is not None
    assert record.status is TaskStatus.FAILED
    assert record.failure is FailureReason.EQUIPMENT_NOT_FOUND
    assert record.finished_at is not None and record.finished_at >= record.created_at


@pytest.mark.parametrize("late", [TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.FAILED])
async def test_a_final_status_is_never_overwritten(store: TaskStore, late: TaskStatus) -> None:
    task_id = new_id()
    await store.create(task_id, "abcdef1")
    await store.transition(task_id, TaskStatus.COMPLETED)
    failure = FailureReason.REJECTED_BY_SERVICE_A if late is TaskStatus.FAILED else None
    transition = await store.transition(task_id, late, failure)
    assert transition.outcome is TransitionOutcome.STALE
    assert transition.previous is TaskStatus.COMPLETED
    record = await store.get(task_id)
    assert record is not None and record.status is TaskStatus.COMPLETED and record.failure is None


async def test_concurrent_writers_cannot_move_a_final_task_back(store: TaskStore) -> None:
    task_ids = [new_id() for _ in range(50)]
    for task_id in task_ids:
        await store.create(task_id, "abcdef1")
    writes = [
        (task_id, status)
        for task_id in task_ids
        for status in [TaskStatus.RUNNING] * 5 + [TaskStatus.COMPLETED] * 2
    ]
    random.Random(3).shuffle(writes)
    results = await asyncio.gather(*(store.transition(t, s) for t, s in writes))
    for task_id in task_ids:
        record = await store.get(task_id)
        assert record is not None and record.status is TaskStatus.COMPLETED
    applied_final = sum(
        1 for (_, status), result in zip(writes, results, strict=True)
        if status is TaskStatus.COMPLETED and result.outcome is TransitionOutcome.APPLIED
    )
    assert applied_final == len(task_ids)  # exactly one final write per task took effect


async def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    settings = RedisSettings("redis://127.0.0.1:1/0", "x:", 60, 0.5, 2)
    async with TaskStore(settings) as store:
        with pytest.raises(StoreUnavailable):
            await store.create(new_id(), "abcdef1")
        with pytest.raises(StoreUnavailable):
            await store.get(new_id())


async def test_a_conditional_transition_applies_only_from_the_named_status(store: TaskStore) -> None:
    pending, running = new_id(), new_id()
    for task_id in (pending, running):
        await store.create(task_id, "abcdef1")
    await store.transition(running, TaskStatus.RUNNING)
    failed = FailureReason.NOT_QUEUED
    assert (await store.transition(pending, TaskStatus.FAILED, failed, only_from=TaskStatus.PENDING)
            ).outcome is TransitionOutcome.APPLIED
    refused = await store.transition(running, TaskStatus.FAILED, failed, only_from=TaskStatus.PENDING)
    assert (refused.outcome, refused.previous) == (TransitionOutcome.STALE, TaskStatus.RUNNING)
    record = await store.get(running)
    assert record is not None and record.status is TaskStatus.RUNNING
