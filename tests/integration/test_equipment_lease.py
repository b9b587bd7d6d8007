"""The device lease against the real Redis: taken, released only by its holder, left to expire
when its holder is interrupted, and waited for (never past its expiry) by the next attempt."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from provisioning.backoff import Backoff
from provisioning.equipment_lease import EquipmentLease
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore

SHORT_LEASE = 0.6
DEVICE = "abcdef1"


class Interrupted(Exception):
    """Stands for a holder that stops mid-call (cancelled, or gone)."""


@pytest.fixture
async def store(redis_settings: RedisSettings) -> AsyncIterator[TaskStore]:
    async with TaskStore(redis_settings) as store:
        yield store


def lease_of(store: TaskStore, settings: RedisSettings, seconds: float) -> EquipmentLease:
    return EquipmentLease(store.redis, key_prefix=settings.key_prefix, lease_seconds=seconds,
                          retry=Backoff(0.02, 0.2))


def device() -> str:
    return f"CPE{uuid.uuid4().hex[:10]}"


async def holder_of(store: TaskStore, lease: EquipmentLease, equipment_id: str) -> str | None:
    value = await store.redis.get(lease.key(equipment_id))
    assert value is None or isinstance(value, str)
    return value


async def abandon(lease: EquipmentLease, equipment_id: str) -> None:
    """Take the lease and stop without finishing, as a worker killed mid-call does."""
    with pytest.raises(Interrupted):
        async with lease.hold(equipment_id, "dead-task"):
            raise Interrupted


async def test_a_free_lease_is_taken_at_once_for_the_whole_lease_and_released_after(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, 30), device()
    async with lease.hold(equipment_id, "task-1") as waited:
        holder = await holder_of(store, lease, equipment_id)
        left_ms = await store.redis.pttl(lease.key(equipment_id))
    assert waited == 0.0
    assert holder is not None and holder.startswith("task-1:")
    assert 29_000 < left_ms <= 30_000
    assert await store.redis.exists(lease.key(equipment_id)) == 0


async def test_the_key_is_named_under_the_run_prefix(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease = lease_of(store, redis_settings, 30)
    assert lease.key("ABC123") == f"{redis_settings.key_prefix}lease:{{ABC123}}"


async def test_an_interrupted_holder_leaves_its_lease_to_expire(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, 30), device()
    await abandon(lease, equipment_id)
    holder = await holder_of(store, lease, equipment_id)
    assert holder is not None and holder.startswith("dead-task:")
    assert await store.redis.pttl(lease.key(equipment_id)) > 29_000


async def test_a_holder_whose_lease_passed_to_another_does_not_release_the_other_one(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, 30), device()
    async with lease.hold(equipment_id, "task-1"):
        # Our lease ran out and another attempt took the device meanwhile.
        await store.redis.set(lease.key(equipment_id), "task-2:other", px=30_000)
    assert await holder_of(store, lease, equipment_id) == "task-2:other"


async def test_the_next_attempt_waits_until_a_dead_holders_lease_expires(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, SHORT_LEASE), device()
    await abandon(lease, equipment_id)
    started = time.monotonic()
    async with lease.hold(equipment_id, "task-2") as waited:
        took = time.monotonic() - started
    assert SHORT_LEASE - 0.1 < waited <= took < SHORT_LEASE + 0.3


async def test_the_next_attempt_takes_the_device_soon_after_a_live_holder_releases_it(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, 30), device()
    holding = asyncio.Event()

    async def first() -> None:
        async with lease.hold(equipment_id, "task-1"):
            holding.set()
            await asyncio.sleep(0.3)

    holder = asyncio.create_task(first())
    await holding.wait()
    async with lease.hold(equipment_id, "task-2") as waited:
        assert holder.done(), "two holders at once"
    assert 0.1 < waited < 0.3 + 0.5


async def test_a_lease_left_without_an_expiry_is_given_one(
    store: TaskStore, redis_settings: RedisSettings
) -> None:
    lease, equipment_id = lease_of(store, redis_settings, SHORT_LEASE), device()
    await store.redis.set(lease.key(equipment_id), "stray")
    async with lease.hold(equipment_id, "task-1") as waited:
        pass
    assert SHORT_LEASE - 0.1 < waited < SHORT_LEASE + 0.3
