"""The task store's cancellation, per-device history and reject-mode bookkeeping, on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from provisioning.errors import EquipmentBusy
from provisioning.models import FailureReason, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import CancelOutcome, TaskStore, TransitionOutcome

HISTORY_LIMIT = 5


@pytest.fixture
async def store(redis_settings: RedisSettings) -> AsyncIterator[TaskStore]:
    async with TaskStore(redis_settings, history_limit=HISTORY_LIMIT) as store:
        yield store


def new_id() -> str:
    return str(uuid.uuid4())


def device() -> str:
    return f"DEV{uuid.uuid4().hex[:10]}"


async def test_cancelling_a_pending_task_makes_it_cancelled_and_a_late_running_stale(
    store: TaskStore,
) -> None:
    task_id, equipment_id = new_id(), device()
    await store.create(task_id, equipment_id)
    assert await store.cancel(task_id, equipment_id) == (CancelOutcome.CANCELLED, TaskStatus.PENDING, None)
    late = await store.transition(task_id, TaskStatus.RUNNING)
    assert (late.outcome, late.previous) == (TransitionOutcome.STALE, TaskStatus.CANCELLED)
    record = await store.get(task_id)
    assert record is not None
    assert record.status is TaskStatus.CANCELLED
    assert record.cancel_requested and record.finished_at == record.cancel_requested_at
    assert (record.attempts, record.running_at) == (0, None)


async def test_cancelling_a_running_task_records_the_request_and_keeps_its_outcome(
    store: TaskStore,
) -> None:
    task_id, equipment_id = new_id(), device()
    await store.create(task_id, equipment_id)
    await store.transition(task_id, TaskStatus.RUNNING)
    assert await store.cancel(task_id, equipment_id, now=1000.0) == (
        CancelOutcome.REQUESTED, TaskStatus.RUNNING, None)
    assert (await store.cancel(task_id, equipment_id, now=2000.0))[0] is CancelOutcome.REQUESTED
    done = await store.transition(task_id, TaskStatus.COMPLETED, attempts=2)
    assert done.outcome is TransitionOutcome.APPLIED
    record = await store.get(task_id)
    assert record is not None
    assert (record.status, record.attempts) == (TaskStatus.COMPLETED, 2)
    assert record.cancel_requested_at == 1000.0  # the first request's time is kept


async def test_cancelling_a_final_task_changes_nothing(store: TaskStore) -> None:
    task_id, equipment_id = new_id(), device()
    await store.create(task_id, equipment_id)
    await store.transition(task_id, TaskStatus.FAILED, FailureReason.REJECTED_BY_SERVICE_A, attempts=1)
    before = await store.get(task_id)
    assert await store.cancel(task_id, equipment_id) == (CancelOutcome.ALREADY_FINAL, TaskStatus.FAILED, None)
    assert await store.get(task_id) == before


async def test_cancelling_under_another_equipment_id_or_an_unknown_task_is_missing(
    store: TaskStore,
) -> None:
    task_id = new_id()
    await store.create(task_id, device())
    assert (await store.cancel(task_id, device()))[0] is CancelOutcome.MISSING
    assert (await store.cancel(new_id(), device()))[0] is CancelOutcome.MISSING
    record = await store.get(task_id)
    assert record is not None and record.status is TaskStatus.PENDING and not record.cancel_requested


async def test_a_transition_records_when_the_task_started_running(store: TaskStore) -> None:
    task_id = new_id()
    await store.create(task_id, device(), now=100.0, trace_id="ab" * 16)
    await store.transition(task_id, TaskStatus.RUNNING, now=105.0)
    await store.transition(task_id, TaskStatus.COMPLETED, now=110.0, attempts=1)
    record = await store.get(task_id)
    assert record is not None
    assert (record.created_at, record.running_at, record.finished_at) == (100.0, 105.0, 110.0)
    assert (record.attempts, record.trace_id) == (1, "ab" * 16)


async def test_history_pages_newest_first_through_tied_creation_times(store: TaskStore) -> None:
    equipment_id = device()
    ids = [new_id() for _ in range(5)]
    for index, task_id in enumerate(ids):
        await store.create(task_id, equipment_id, now=100.0 + index // 2)  # ties in pairs
    seen: list[str] = []
    after = None
    for _ in range(5):
        page = await store.history(equipment_id, limit=2, after=after)
        seen += [record.task_id for record in page.records]
        after = page.next_after
        if after is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)  # each once, none lost
    created = [(await store.get(task_id)).created_at for task_id in seen]  # type: ignore[union-attr]
    assert created == sorted(created, reverse=True)


async def test_history_keeps_only_the_newest_up_to_its_limit(
    store: TaskStore, raw_redis: aioredis.Redis, redis_settings: RedisSettings
) -> None:
    equipment_id = device()
    ids = [new_id() for _ in range(HISTORY_LIMIT + 3)]
    for index, task_id in enumerate(ids):
        await store.create(task_id, equipment_id, now=100.0 + index)
    key = store.history_key(equipment_id)
    assert await raw_redis.zcard(key) == HISTORY_LIMIT
    page = await store.history(equipment_id, limit=100)
    assert [record.task_id for record in page.records] == ids[::-1][:HISTORY_LIMIT]
    assert page.next_after is None
    ttl = await raw_redis.ttl(key)
    assert redis_settings.task_ttl_seconds - 5 < ttl <= redis_settings.task_ttl_seconds


async def test_history_skips_tasks_whose_record_expired(
    store: TaskStore, raw_redis: aioredis.Redis
) -> None:
    equipment_id = device()
    kept, expired = new_id(), new_id()
    await store.create(kept, equipment_id, now=100.0)
    await store.create(expired, equipment_id, now=101.0)
    await raw_redis.delete(store.key(expired, equipment_id))
    page = await store.history(equipment_id, limit=10)
    assert [record.task_id for record in page.records] == [kept]


async def test_an_exclusive_create_is_refused_while_the_device_has_an_unfinished_task(
    store: TaskStore,
) -> None:
    equipment_id, first, second = device(), new_id(), new_id()
    await store.create(first, equipment_id, exclusive=True)
    await store.transition(first, TaskStatus.RUNNING)
    with pytest.raises(EquipmentBusy) as refused:
        await store.create(second, equipment_id, exclusive=True)
    assert refused.value.body_fields() == {"taskId": first}
    assert await store.get(second) is None
    page = await store.history(equipment_id, limit=10)
    assert [record.task_id for record in page.records] == [first]


@pytest.mark.parametrize("ending", ["completed", "cancelled", "deleted"])
async def test_the_device_is_free_again_once_its_task_ended(
    store: TaskStore, raw_redis: aioredis.Redis, ending: str
) -> None:
    equipment_id, first, second = device(), new_id(), new_id()
    await store.create(first, equipment_id, exclusive=True)
    if ending == "completed":
        await store.transition(first, TaskStatus.COMPLETED, attempts=1)
    elif ending == "cancelled":
        await store.cancel(first, equipment_id)
    else:
        await store.delete(first)
    assert not await raw_redis.exists(store.active_key(equipment_id))
    await store.create(second, equipment_id, exclusive=True)
    assert await raw_redis.get(store.active_key(equipment_id)) == second


async def test_a_parallel_create_writes_no_unfinished_task_pointer(
    store: TaskStore, raw_redis: aioredis.Redis
) -> None:
    equipment_id = device()
    await store.create(new_id(), equipment_id)
    await store.create(new_id(), equipment_id)
    assert not await raw_redis.exists(store.active_key(equipment_id))
