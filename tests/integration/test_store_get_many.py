"""``TaskStore.get_many`` against the real Redis: many records in one round trip, read exactly
as ``get`` reads each of them."""

from __future__ import annotations

import uuid

import pytest

from provisioning.errors import StoreUnavailable
from provisioning.models import FailureReason, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore


def new_id() -> str:
    return str(uuid.uuid4())


async def test_many_records_read_the_same_as_one_at_a_time_in_the_order_asked(store: TaskStore) -> None:
    pending, running, failed = new_id(), new_id(), new_id()
    for task_id in (pending, running, failed):
        await store.create(task_id, "abcdef1")
    await store.transition(running, TaskStatus.RUNNING)
    await store.transition(failed, TaskStatus.FAILED, FailureReason.REJECTED_BY_SERVICE_A)
    asked = [failed, pending, running]

    records = await store.get_many(asked)

    assert records == [await store.get(task_id) for task_id in asked]
    assert [record.status for record in records if record is not None] == [
        TaskStatus.FAILED, TaskStatus.PENDING, TaskStatus.RUNNING]


async def test_a_task_that_is_not_there_reads_as_none_in_its_place(store: TaskStore) -> None:
    known, unknown = new_id(), new_id()
    await store.create(known, "abcdef1")
    records = await store.get_many([unknown, known])
    assert records[0] is None
    assert records[1] is not None and records[1].task_id == known


async def test_no_tasks_asked_reads_as_no_records(store: TaskStore) -> None:
    assert await store.get_many([]) == []


async def test_thousands_of_records_come_back_in_one_call(store: TaskStore) -> None:
    task_ids = [new_id() for _ in range(2000)]
    for task_id in task_ids:
        await store.create(task_id, "abcdef1")
    records = await store.get_many(task_ids)
    assert [record.task_id for record in records if record is not None] == task_ids


async def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    settings = RedisSettings("redis://127.0.0.1:1/0", "x:", 60, 0.5, 2)
    async with TaskStore(settings) as store:
        with pytest.raises(StoreUnavailable):
            await store.get_many([new_id()])
