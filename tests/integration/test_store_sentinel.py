"""The task store through Redis Sentinel, on a deployment of the test's own (``SentinelGroup``:
a master, a replica, three sentinels on their own ports; the machine's Redis is not touched):
it follows a failover, blocks under bursts, and waits for replicas (``REDIS_WAIT_REPLICAS``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from cpe_devkit.redis_server import RedisServer, SentinelGroup
from provisioning.api.waiters import Waiters
from provisioning.errors import StoreUnavailable
from provisioning.models import TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore, TransitionOutcome
from provisioning.telemetry.metrics import CompletionMetrics

FAILOVER_SECONDS = 30.0


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    deployment = SentinelGroup(tmp_path / "sentinel")
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


def settings_for(group: SentinelGroup, **changes: object) -> RedisSettings:
    settings = RedisSettings(
        url=group.url(), key_prefix=f"test-sentinel:{uuid.uuid4().hex[:8]}:",
        task_ttl_seconds=600, socket_timeout_seconds=1.0, max_connections=4,
        sentinels=tuple(("127.0.0.1", port) for port in group.sentinel_ports),
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


async def keys_on(server: RedisServer, key: str) -> int:
    client = aioredis.Redis(port=server.port, decode_responses=True)
    try:
        return int(await client.exists(key))
    finally:
        await client.aclose()


async def until_stored(write: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Retry a write, as the callers' ``until_available`` would, until it goes through."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await write()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def refusal(store: TaskStore, task_id: str, timeout: float) -> str:
    """Create until the store refuses for want of replicas (not for the failover's lost
    connections); the refusal's message."""
    deadline = time.monotonic() + timeout
    while True:
        with pytest.raises(StoreUnavailable) as refused:
            await store.create(task_id, "abcdef1")
        if "replicas acknowledged" in str(refused.value) or time.monotonic() > deadline:
            return str(refused.value)
        await asyncio.sleep(0.2)


async def test_the_store_writes_to_the_master_sentinel_names(group: SentinelGroup) -> None:
    async with TaskStore(settings_for(group)) as store:
        task_id = str(uuid.uuid4())
        await store.create(task_id, "abcdef1")
        assert await keys_on(group.master(), store.key(task_id, "abcdef1")) == 1
        record = await store.get(task_id)
        assert record is not None and record.status is TaskStatus.PENDING


async def test_after_a_failover_commands_fail_as_unavailable_then_reach_the_new_master(
    group: SentinelGroup,
) -> None:
    async with TaskStore(settings_for(group)) as store:
        before = str(uuid.uuid4())
        await store.create(before, "abcdef1")
        old = group.master()
        killed, failover = await asyncio.to_thread(group.kill_master, FAILOVER_SECONDS)
        assert killed is old
        new = group.master()
        assert new is not old

        after = str(uuid.uuid4())
        await until_stored(lambda: store.create(after, "abcdef1"), timeout=10)
        assert await keys_on(new, store.key(after, "abcdef1")) == 1
        # The record written before the kill had been replicated: it is on the new master.
        transition = await store.transition(before, TaskStatus.RUNNING)
        assert transition.outcome is TransitionOutcome.APPLIED, failover


async def test_a_burst_waits_for_the_pools_connections_instead_of_failing(
    group: SentinelGroup,
) -> None:
    async with TaskStore(settings_for(group, max_connections=2)) as store:
        ids = [str(uuid.uuid4()) for _ in range(50)]
        await asyncio.gather(*(store.create(task_id, "abcdef1") for task_id in ids))
        records = await asyncio.gather(*(store.get(task_id) for task_id in ids))
        assert all(record is not None for record in records)


async def test_a_durable_create_is_on_the_replica_once_it_returns(group: SentinelGroup) -> None:
    async with TaskStore(settings_for(group, wait_replicas=1, wait_timeout_seconds=0.5)) as store:
        replica = next(server for server in group.servers if server is not group.master())
        ids = [str(uuid.uuid4()) for _ in range(20)]
        for task_id in ids:
            await store.create(task_id, "abcdef1")
            # Read on the replica right away: WAIT made the create wait for its acknowledgement.
            assert await keys_on(replica, store.key(task_id, "abcdef1")) == 1


async def test_a_durable_write_without_a_replica_is_unavailable_and_the_create_leaves_nothing(
    group: SentinelGroup,
) -> None:
    settings = settings_for(group, wait_replicas=1, wait_timeout_seconds=0.3)
    async with TaskStore(settings) as store, TaskStore(replace(settings, wait_replicas=0)) as plain:
        running = str(uuid.uuid4())
        await store.create(running, "abcdef1")
        await store.transition(running, TaskStatus.RUNNING)
        killed, _ = await asyncio.to_thread(group.kill_master, FAILOVER_SECONDS)
        # The new master has no replica until the old one is back.
        refused = str(uuid.uuid4())
        assert "replicas acknowledged" in await refusal(store, refused, timeout=10)
        assert await plain.get(refused) is None, "a create not replicated is taken back"
        with pytest.raises(StoreUnavailable, match="replicas acknowledged"):
            await store.transition(running, TaskStatus.COMPLETED)
        # Applied on the master but not confirmed: the retry finds it final (stale) and is
        # confirmed only once a replica has it.
        await asyncio.to_thread(group.restart, killed)
        again = await store.transition(running, TaskStatus.COMPLETED)
        assert again.outcome is TransitionOutcome.STALE
        await store.create(refused, "abcdef1")
        assert await keys_on(killed, store.key(refused, "abcdef1")) == 1


async def test_the_waiters_subscription_follows_the_master_through_a_failover(
    group: SentinelGroup,
) -> None:
    settings = settings_for(group)
    async with TaskStore(settings) as store:
        waiters = Waiters(settings, store.events_channel, limit=10,
                          metrics=CompletionMetrics(CollectorRegistry()))
        waiters.start()
        try:
            task_id = str(uuid.uuid4())
            await store.create(task_id, "abcdef1")
            await asyncio.to_thread(group.kill_master, FAILOVER_SECONDS)
            await subscribed_on(group.master(), waiters.client_name, timeout=20)
            with waiters.watch(task_id, final_only=True) as watch:
                await until_stored(lambda: store.transition(task_id, TaskStatus.COMPLETED),
                                   timeout=10)
                assert await watch.wait(5), "the notice from the new master woke no one"
        finally:
            await waiters.close()


async def subscribed_on(server: RedisServer, client_name: str, timeout: float) -> None:
    """Wait until a connection named ``client_name`` is subscribed on ``server``."""
    client = aioredis.Redis(port=server.port, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while not any(entry.get("name") == client_name and entry.get("sub") == "1"
                      for entry in await client.client_list()):
            assert time.monotonic() < deadline, f"{client_name} never subscribed on {server.port}"
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


async def test_a_record_a_failover_lost_is_restored_once_from_its_message(
    group: SentinelGroup,
) -> None:
    async with TaskStore(settings_for(group, wait_replicas=1, wait_timeout_seconds=0.5)) as store:
        task_id = str(uuid.uuid4())
        created = await store.create(task_id, "abcdef1")
        await store.redis.delete(store.key(task_id, "abcdef1"), store.events_key(task_id, "abcdef1"))  # "lost"
        assert store.restorable(created)
        assert await store.restore(task_id, "abcdef1", TaskStatus.RUNNING, created_at=created)
        assert not await store.restore(task_id, "abcdef1", TaskStatus.RUNNING, created_at=created)
        record = await store.get(task_id)
        assert record is not None and record.status is TaskStatus.RUNNING
        assert (record.created_at, record.running_at is not None) == (created, True)
        page = await store.history("abcdef1", limit=10)
        assert [r.task_id for r in page.records] == [task_id]
        done = await store.transition(task_id, TaskStatus.COMPLETED, attempts=1)
        assert done.outcome is TransitionOutcome.APPLIED
        assert [fields["type"] for _, fields in await store.events(task_id)] == [
            "running", "completed"]


def test_only_a_store_behind_sentinel_restores_and_only_records_that_would_not_have_expired(
) -> None:
    one_node = RedisSettings(url="redis://127.0.0.1:1/0", key_prefix="x:", task_ttl_seconds=600,
                             socket_timeout_seconds=1.0, max_connections=1)
    behind_sentinel = replace(one_node, sentinels=(("127.0.0.1", 1),))
    now = time.time()
    assert not TaskStore(one_node).restorable(now)
    assert TaskStore(behind_sentinel).restorable(now - 599, now=now)
    assert not TaskStore(behind_sentinel).restorable(now - 601, now=now)
