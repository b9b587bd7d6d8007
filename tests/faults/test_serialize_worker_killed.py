"""Serialize mode under a worker killed mid-call: no two Service A calls for one device overlap,
and every device's tasks still run one after another in creation order, none lost.

Counted at the stub as in ``test_equipment_lease`` (``equipment_stub_overlapping_calls_total``
counts a killed worker's call until its delay would have ended)."""

from __future__ import annotations

import asyncio
import signal
from itertools import pairwise

import pytest

from provisioning.environment import Environment
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore

from .harness import PlatformFactory, redelivered_tasks
from .ledger import Ledger, equipment
from .test_equipment_lease import KILL_DELAY, LEASE_SETTINGS, OVERLAPS
from .test_worker_killed import a_worker_holding_tasks

SERIAL_DEVICES, SERIAL_TASKS = 5, 3


@pytest.mark.timeout(90)
async def test_in_serialize_mode_a_killed_workers_device_runs_its_tasks_in_order_overlapping_nothing(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    """Every device has one task at the stub and two waiting for their turn (parked, on no
    worker); the worker holding most calls is SIGKILLed. Its tasks are redelivered and wait for
    the lease; each device's waiting tasks follow in creation order once its task is done."""
    platform = await start_platform(EQUIPMENT_CONCURRENCY="serialize",
                                    STUB_DELAY_SECONDS=str(KILL_DELAY), **LEASE_SETTINGS)
    devices = [equipment() for _ in range(SERIAL_DEVICES)]

    async def one_after_another(device: str) -> list[str | None]:
        return [await ledger.create(platform.client, device) for _ in range(SERIAL_TASKS)]

    created = await asyncio.gather(*(one_after_another(device) for device in devices))
    assert len(ledger.accepted) == SERIAL_DEVICES * SERIAL_TASKS

    victim, held = await a_worker_holding_tasks(platform, at_least=2, timeout=20)
    platform.kill(victim, signal.SIGKILL)
    await platform.wait_workers(2, timeout=30, without=[victim.pid])
    await ledger.settle(platform.statuses, timeout=60)
    async with TaskStore(RedisSettings.from_env(Environment(platform.environment))) as store:
        found = {record.task_id: record for record in await store.get_many(list(ledger.accepted))
                 if record is not None}
    out_of_order = [
        (before, after) for ids in created for before, after in pairwise(ids)
        if before and after and (found[after].running_at or 0) < (found[before].finished_at or 0)]
    ledger.note(killed_pid=victim.pid, tasks_held_by_killed_worker=held,
                redelivered=redelivered_tasks(platform), out_of_order=len(out_of_order),
                overlapping_calls=int(await platform.counter("stub", OVERLAPS)),
                stub_success_answers=int(await platform.stub_answers("success")))
    depths = await platform.wait_queues_empty(timeout=15)

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (SERIAL_DEVICES * SERIAL_TASKS, 0)
    assert ledger.notes["overlapping_calls"] == 0
    assert out_of_order == []
    assert ledger.notes["redelivered"] >= held, "the killed worker's tasks were not redelivered"
    # The killed worker's calls were answered too (it died waiting), so at least one per task.
    assert ledger.notes["stub_success_answers"] >= SERIAL_DEVICES * SERIAL_TASKS
    assert {queue: (d.ready, d.unacked) for queue, d in depths.items()} == dict.fromkeys(
        platform.queues, (0, 0))
