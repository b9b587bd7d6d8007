"""The wake-up of waiting requests: one Redis subscription per process, notices published by
the store's own scripts, a resync after the subscription is lost, and the waiters' bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from provisioning.api.waiters import Waiters
from provisioning.errors import ServiceOverloaded
from provisioning.models import FailureReason, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore
from provisioning.task_events import EventType, TaskEvent
from provisioning.telemetry.metrics import ApiMetrics

WOKEN_WITHIN = 2.0


def device() -> str:
    return f"WAIT{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def waiters(redis_settings: RedisSettings, store: TaskStore) -> AsyncIterator[Waiters]:
    hub = Waiters(redis_settings, store.events_channel, limit=3,
                  metrics=ApiMetrics().completion, client_name=f"test-waiters-{uuid.uuid4().hex}")
    hub.start()
    await subscribed(hub)
    yield hub
    await hub.close()


async def subscribed(hub: Waiters, timeout: float = 5.0) -> None:
    """Until the hub's subscription is up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not hub.subscribed:
        assert asyncio.get_running_loop().time() < deadline, "the subscription never came up"
        await asyncio.sleep(0.02)


async def test_a_final_transition_wakes_the_tasks_waiter_and_no_other(
    waiters: Waiters, store: TaskStore,
) -> None:
    task, other = str(uuid.uuid4()), str(uuid.uuid4())
    await store.create(task, device())
    await store.create(other, device())
    with waiters.watch(task, final_only=True) as watch, \
            waiters.watch(other, final_only=True) as bystander:
        await store.transition(task, TaskStatus.COMPLETED, attempts=1)
        assert await watch.wait(WOKEN_WITHIN)
        assert not await bystander.wait(0.3)


async def test_a_final_only_waiter_sleeps_through_running_and_attempts(
    waiters: Waiters, store: TaskStore,
) -> None:
    task = str(uuid.uuid4())
    await store.create(task, device())
    with waiters.watch(task, final_only=True) as final_only, \
            waiters.watch(task, final_only=False) as every_event:
        await store.transition(task, TaskStatus.RUNNING)
        await store.record_attempt(task, 1, "error")
        assert await every_event.wait(WOKEN_WITHIN)
        assert not await final_only.wait(0.3)
        await store.transition(task, TaskStatus.FAILED, FailureReason.SERVICE_A_UNAVAILABLE, attempts=1)
        assert await final_only.wait(WOKEN_WITHIN)


async def test_the_event_log_holds_every_change_in_order_with_its_fields(store: TaskStore) -> None:
    task, equipment_id = str(uuid.uuid4()), device()
    await store.create(task, equipment_id, now=100.0)
    await store.transition(task, TaskStatus.RUNNING, now=101.0)
    await store.record_attempt(task, 1, "error", now=102.0)
    await store.record_attempt(task, 2, "success", now=103.0)
    await store.transition(task, TaskStatus.COMPLETED, attempts=2, now=104.0)
    await store.transition(task, TaskStatus.COMPLETED, attempts=2, now=105.0)  # a duplicate: no event
    events = [TaskEvent.from_stream(i, fields) for i, fields in await store.events(task)]
    assert [(e.type, e.at, e.attempt, e.outcome) for e in events] == [
        (EventType.PENDING, 100.0, None, None),
        (EventType.RUNNING, 101.0, None, None),
        (EventType.ATTEMPT, 102.0, 1, "error"),
        (EventType.ATTEMPT, 103.0, 2, "success"),
        (EventType.COMPLETED, 104.0, None, None),
    ]
    assert events[-1].attempts == 2
    after_second = await store.events(task, after=events[1].event_id)
    assert [i for i, _ in after_second] == [e.event_id for e in events[2:]]


async def test_the_event_log_is_bounded_and_expires_with_the_task(
    redis_settings: RedisSettings, raw_redis: aioredis.Redis,
) -> None:
    limited = RedisSettings(redis_settings.url, redis_settings.key_prefix, 60, 1.0, 4,
                            event_log_limit=8)
    async with TaskStore(limited) as store:
        task, equipment_id = str(uuid.uuid4()), device()
        await store.create(task, equipment_id)
        for attempt in range(1, 20):
            await store.record_attempt(task, attempt, "error")
        assert await raw_redis.xlen(store.events_key(task, equipment_id)) == 8
        assert 0 < await raw_redis.ttl(store.events_key(task, equipment_id)) <= 60
        await store.delete(task)
        assert not await raw_redis.exists(store.events_key(task, equipment_id))


async def test_an_attempt_for_a_task_without_a_record_writes_nothing(
    store: TaskStore, raw_redis: aioredis.Redis,
) -> None:
    task, equipment_id = str(uuid.uuid4()), device()
    await store.record_attempt(task, 1, "success", equipment_id=equipment_id)
    assert not await raw_redis.exists(store.events_key(task, equipment_id))


async def test_a_lost_subscription_is_renewed_and_wakes_every_waiter_to_read_again(
    waiters: Waiters, store: TaskStore, raw_redis: aioredis.Redis,
) -> None:
    task = str(uuid.uuid4())
    await store.create(task, device())
    with waiters.watch(task, final_only=True) as watch:
        killed = 0
        for client in await raw_redis.client_list(_type="pubsub"):
            if client.get("name") == waiters.client_name:
                await raw_redis.client_kill_filter(_id=client["id"])
                killed += 1
        assert killed == 1
        # Nothing happened to the task, yet the waiter is woken to read it again: whatever
        # was announced while the subscription was down is not missed.
        assert await watch.wait(5.0)
        await subscribed(waiters)
        await store.transition(task, TaskStatus.COMPLETED, attempts=1)
        assert await watch.wait(WOKEN_WITHIN)


async def test_waiters_past_the_limit_are_refused_and_a_released_place_is_free_again(
    waiters: Waiters,
) -> None:
    task = str(uuid.uuid4())
    with waiters.watch(task, final_only=True), waiters.watch(task, final_only=True):
        with waiters.watch(task, final_only=False):
            assert waiters.count == 3
            with pytest.raises(ServiceOverloaded), waiters.watch(task, final_only=True):
                pass
        with waiters.watch(task, final_only=True):
            assert waiters.count == 3
    assert waiters.count == 0
