"""The task store, the idempotency keys, the device leases and the notices on a real Redis
Cluster (3 masters with a replica each, throwaway: ``cpe_devkit.redis_server``), through
``REDIS_CLUSTER=true``: every script runs on one slot, the device's."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from cpe_devkit.redis_server import RedisClusterNodes
from provisioning.api.waiters import Waiters
from provisioning.environment import Environment
from provisioning.equipment_lease import EquipmentLease
from provisioning.errors import EquipmentBusy, StoreUnavailable
from provisioning.idempotency import IdempotencyStore, KeyState
from provisioning.models import FailureReason, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import (
    Admission,
    AdvanceOutcome,
    CancelOutcome,
    TaskStore,
    TransitionOutcome,
)
from provisioning.telemetry.metrics import ApiMetrics

MAX_WAITING = 3
WOKEN_WITHIN = 3.0

pytestmark = pytest.mark.timeout(60)


def new_id() -> str:
    return str(uuid.uuid4())


def device() -> str:
    return f"CL{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(Path(tmp_path_factory.mktemp("redis-cluster")))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        nodes.close()


@pytest.fixture
def cluster_settings(redis_cluster: RedisClusterNodes, run_environment: dict[str, str]
                     ) -> RedisSettings:
    return RedisSettings.from_env(Environment(
        {**run_environment, "REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": "true"}))


@pytest.fixture
async def store(cluster_settings: RedisSettings) -> AsyncIterator[TaskStore]:
    async with TaskStore(cluster_settings) as store:
        yield store


@pytest.fixture
async def raw_cluster(redis_cluster: RedisClusterNodes) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    yield client
    await client.aclose()


async def devices_on_every_master(store: TaskStore, raw: RedisCluster, per_master: int = 4
                                  ) -> list[str]:
    """``per_master`` random devices whose keys live on each of the three masters. Drawn until
    every master has its share: a fixed 12 random devices missed one master about once in 40
    runs (3 x (2/3)^12)."""
    await raw.initialize()
    by_master: dict[str, list[str]] = {}
    for _ in range(1000):
        equipment = device()
        master = str(getattr(raw.get_node_from_key(store.key(new_id(), equipment)), "name", None))
        if len(by_master.setdefault(master, [])) < per_master:
            by_master[master].append(equipment)
        if len(by_master) == 3 and all(len(found) == per_master for found in by_master.values()):
            return [equipment for found in by_master.values() for equipment in found]
    raise AssertionError(f"1,000 random devices did not cover three masters: {sorted(by_master)}")


async def test_every_key_of_a_device_shares_its_slot(store: TaskStore, raw_cluster: RedisCluster,
                                                     cluster_settings: RedisSettings) -> None:
    equipment_id, task_id = device(), new_id()
    lease = EquipmentLease(store.redis, key_prefix=cluster_settings.key_prefix, lease_seconds=1)
    keys = [store.key(task_id, equipment_id), store.events_key(task_id, equipment_id),
            store.history_key(equipment_id), store.active_key(equipment_id),
            store.waiting_key(equipment_id), lease.key(equipment_id)]
    assert {raw_cluster.keyslot(key) for key in keys} == {raw_cluster.keyslot(equipment_id)}


async def test_a_task_lives_through_create_transitions_history_and_events(
    store: TaskStore, raw_cluster: RedisCluster,
) -> None:
    for equipment_id in await devices_on_every_master(store, raw_cluster):
        task_id = new_id()
        created = await store.create(task_id, equipment_id)
        assert (await store.transition(task_id, TaskStatus.RUNNING, equipment_id=equipment_id)
                ).outcome is TransitionOutcome.APPLIED
        await store.record_attempt(task_id, 1, "success", equipment_id=equipment_id)
        final = await store.transition(task_id, TaskStatus.COMPLETED, attempts=1)  # by the index
        assert (final.outcome, final.previous, final.created_at) == (
            TransitionOutcome.APPLIED, TaskStatus.RUNNING, created)
        for record in (await store.get(task_id), await store.get(task_id, equipment_id)):
            assert record is not None
            assert (record.status, record.equipment_id, record.attempts) == (
                TaskStatus.COMPLETED, equipment_id, 1)
        assert [fields["type"] for _, fields in await store.events(task_id)] == [
            "pending", "running", "attempt", "completed"]
        page = await store.history(equipment_id, limit=10)
        assert [record.task_id for record in page.records] == [task_id]


async def test_a_stale_transition_does_not_go_back(store: TaskStore) -> None:
    equipment_id, task_id = device(), new_id()
    await store.create(task_id, equipment_id)
    await store.transition(task_id, TaskStatus.FAILED, FailureReason.SERVICE_A_UNAVAILABLE,
                           equipment_id=equipment_id)
    late = await store.transition(task_id, TaskStatus.RUNNING, equipment_id=equipment_id)
    assert (late.outcome, late.previous) == (TransitionOutcome.STALE, TaskStatus.FAILED)


async def test_reject_mode_refuses_a_second_unfinished_task_until_the_first_ends(
    store: TaskStore,
) -> None:
    equipment_id, first = device(), new_id()
    await store.create(first, equipment_id, exclusive=True)
    with pytest.raises(EquipmentBusy):
        await store.create(new_id(), equipment_id, exclusive=True)
    await store.transition(first, TaskStatus.COMPLETED, equipment_id=equipment_id)
    await store.create(new_id(), equipment_id, exclusive=True)


async def test_serialize_mode_parks_in_order_and_hands_the_turn_over(store: TaskStore) -> None:
    equipment_id = device()
    first, second, third = new_id(), new_id(), new_id()
    assert (await store.create_in_turn(first, equipment_id, max_waiting=MAX_WAITING)
            ).admission is Admission.RUN
    parked = await store.create_in_turn(second, equipment_id, max_waiting=MAX_WAITING)
    assert (parked.admission, parked.waiting, parked.behind) == (Admission.PARK, 1, first)
    await store.create_in_turn(third, equipment_id, max_waiting=MAX_WAITING)
    assert (await store.advance(equipment_id)).outcome is AdvanceOutcome.BUSY
    await store.transition(first, TaskStatus.COMPLETED, equipment_id=equipment_id)
    await store.cancel(second, equipment_id)  # a waiting task cancelled: skipped by the hand-over
    step = await store.advance(equipment_id)
    assert (step.outcome, step.task_id, step.waiting, step.skipped) == (
        AdvanceOutcome.MOVE, third, 0, (second,))
    assert await store.parked(third, equipment_id) == (TaskStatus.PENDING, True)
    await store.unpark(third, equipment_id)
    assert await store.parked(third) == (TaskStatus.PENDING, False)
    assert (await store.advance(equipment_id)).outcome is AdvanceOutcome.BUSY


async def test_cancel_applies_to_the_devices_task_only(store: TaskStore) -> None:
    equipment_id, task_id = device(), new_id()
    await store.create(task_id, equipment_id, exclusive=True)
    assert (await store.cancel(task_id, device())).outcome is CancelOutcome.MISSING
    cancelled = await store.cancel(task_id, equipment_id)
    assert (cancelled.outcome, cancelled.previous) == (CancelOutcome.CANCELLED, TaskStatus.PENDING)
    await store.create(new_id(), equipment_id, exclusive=True)  # the device is free again


async def test_delete_removes_the_record_its_events_history_entry_and_index(
    store: TaskStore, raw_cluster: RedisCluster,
) -> None:
    equipment_id, task_id = device(), new_id()
    await store.create(task_id, equipment_id, exclusive=True)
    await store.delete(task_id)
    assert await store.get(task_id, equipment_id) is None
    assert (await store.history(equipment_id, limit=10)).records == []
    for key in (store.key(task_id, equipment_id), store.events_key(task_id, equipment_id),
                store.active_key(equipment_id), store.device_key(task_id)):
        assert not await raw_cluster.exists(key)


async def test_get_many_reads_tasks_of_every_node_in_order(
    store: TaskStore, raw_cluster: RedisCluster,
) -> None:
    tasks = []
    for equipment_id in await devices_on_every_master(store, raw_cluster):
        task_id = new_id()
        await store.create(task_id, equipment_id)
        tasks.append((task_id, equipment_id))
    unknown = new_id()
    records = await store.get_many([task for task, _ in tasks] + [unknown])
    assert [(record.task_id, record.equipment_id) if record else None for record in records] \
        == [*tasks, None]


async def test_durable_writes_are_confirmed_by_the_keys_replica(
    cluster_settings: RedisSettings, raw_cluster: RedisCluster,
) -> None:
    durable = RedisSettings(cluster_settings.url, cluster_settings.key_prefix, 60, 2.0, 8,
                            cluster=True, wait_replicas=1, wait_timeout_seconds=1.0)
    async with TaskStore(durable) as store:
        for equipment_id in await devices_on_every_master(store, raw_cluster):
            task_id = new_id()
            await store.create(task_id, equipment_id)  # StoreUnavailable if WAIT saw 0 replicas
            final = await store.transition(task_id, TaskStatus.COMPLETED, equipment_id=equipment_id)
            assert final.outcome is TransitionOutcome.APPLIED


async def test_a_lost_record_is_restored_with_its_index(store: TaskStore) -> None:
    equipment_id, task_id = device(), new_id()
    assert await store.restore(task_id, equipment_id, TaskStatus.COMPLETED, created_at=100.0,
                               attempts=2)
    record = await store.get(task_id)
    assert record is not None and (record.status, record.attempts) == (TaskStatus.COMPLETED, 2)


async def test_an_idempotency_key_is_claimed_once_confirmed_and_released(
    store: TaskStore, cluster_settings: RedisSettings,
) -> None:
    keys = IdempotencyStore(store.redis, key_prefix=cluster_settings.key_prefix,
                            ttl_seconds=60, claim_seconds=5)
    scope, task_id = uuid.uuid4().hex, new_id()
    assert await keys.claim(scope, "print", task_id) is None
    held = await keys.claim(scope, "print", new_id())
    assert held is not None and (held.state, held.task_id) == (KeyState.CLAIMED, task_id)
    assert await keys.confirm(scope, "print", task_id)
    assert await keys.release(scope, task_id)
    assert await keys.claim(scope, "print", new_id()) is None


async def test_a_devices_lease_is_held_by_one_attempt_at_a_time(
    store: TaskStore, cluster_settings: RedisSettings,
) -> None:
    lease = EquipmentLease(store.redis, key_prefix=cluster_settings.key_prefix, lease_seconds=5)
    equipment_id = device()
    async with lease.hold(equipment_id, "first") as waited:
        assert waited == 0.0
        second = asyncio.create_task(_hold(lease, equipment_id))
        await asyncio.sleep(0.3)
        assert not second.done()
    assert await asyncio.wait_for(second, 5) > 0.0
    assert not await store.redis.exists(lease.key(equipment_id))


async def _hold(lease: EquipmentLease, equipment_id: str) -> float:
    async with lease.hold(equipment_id, "second") as waited:
        return waited


async def test_one_subscription_hears_the_notices_of_tasks_on_every_master(
    store: TaskStore, cluster_settings: RedisSettings, raw_cluster: RedisCluster,
) -> None:
    hub = Waiters(cluster_settings, store.events_channel, limit=20,
                  metrics=ApiMetrics().completion, client_name=f"test-waiters-{uuid.uuid4().hex}")
    hub.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not hub.subscribed:
            assert asyncio.get_running_loop().time() < deadline, "never subscribed"
            await asyncio.sleep(0.02)
        tasks = [(new_id(), equipment_id)
                 for equipment_id in await devices_on_every_master(store, raw_cluster)]
        for task_id, equipment_id in tasks:
            await store.create(task_id, equipment_id)
        with contextlib.ExitStack() as stack:
            watches = [stack.enter_context(hub.watch(task_id, final_only=True))
                       for task_id, _ in tasks]
            for task_id, equipment_id in tasks:
                await store.transition(task_id, TaskStatus.COMPLETED, equipment_id=equipment_id)
            woken = await asyncio.gather(*(watch.wait(WOKEN_WITHIN) for watch in watches))
        assert all(woken)
    finally:
        await hub.close()


async def test_the_subscription_moves_to_another_node_when_its_node_dies(
    tmp_path: Path, run_environment: dict[str, str],
) -> None:
    nodes = RedisClusterNodes(tmp_path / "cluster")
    nodes.start()
    try:
        settings = RedisSettings.from_env(Environment(
            {**run_environment, "REDIS_URL": nodes.url, "REDIS_CLUSTER": "true"}))
        async with TaskStore(settings) as store:
            # A running Service B has used its store: its cluster client knows every node, not
            # only the seed of REDIS_URL, which may be the node killed below (a client whose
            # first command comes after its one seed died finds no node: the single-seed limit).
            await store.create(new_id(), device())
            name = f"test-waiters-{uuid.uuid4().hex}"
            hub = Waiters(settings, store.events_channel, limit=5,
                          metrics=ApiMetrics().completion, client_name=name)
            hub.start()
            try:
                await _until(lambda: hub.subscribed)
                [subscribed] = [node for node in nodes.nodes if name in _client_names(node.port)]
                if subscribed in nodes.masters_now():
                    await asyncio.to_thread(nodes.kill_master, subscribed)
                else:
                    subscribed.stop(signal.SIGKILL)
                await _until(lambda: hub.subscribed
                             and any(name in _client_names(node.port)
                                     for node in nodes.nodes if node.running))
                task_id, equipment_id = new_id(), device()
                await _create_once_served(store, task_id, equipment_id)
                with hub.watch(task_id, final_only=True) as watch:
                    await store.transition(task_id, TaskStatus.COMPLETED,
                                           equipment_id=equipment_id)
                    assert await watch.wait(WOKEN_WITHIN)
            finally:
                await hub.close()
    finally:
        nodes.stop()
        nodes.close()


async def _create_once_served(store: TaskStore, task_id: str, equipment_id: str,
                              timeout: float = 15.0) -> None:
    """Create the task, retrying while the store's own client still finds the cluster
    unreachable: right after a failover its first commands may fail (Service B answers those
    500), but a client that never recovers fails the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await store.create(task_id, equipment_id)
            return
        except StoreUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


def _client_names(port: int) -> set[str]:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                         decode_responses=True)
    try:
        return {str(entry.get("name")) for entry in client.client_list(_type="pubsub")}
    except redis.RedisError:
        return set()
    finally:
        client.close()
