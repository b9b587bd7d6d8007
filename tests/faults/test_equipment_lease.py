"""Reject mode: no two Service A calls for one device ever overlap, not even a redelivered task's
call with the call its killed worker left running at Service A.

The stub counts every call that starts while another call for the same equipment id is in
progress (``equipment_stub_overlapping_calls_total``); a call whose client went away (a killed
worker) still counts until its delay would have ended, as on a Service A that goes on
configuring the device. To get several tasks of one device in flight at once, which Service B
refuses in reject mode, Service B runs in parallel mode and only the worker pool in reject mode.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from provisioning.environment import Environment
from provisioning.models import TaskRecord
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore

from .harness import FaultPlatform, PlatformFactory, redelivered_tasks
from .ledger import Ledger, equipment
from .test_worker_killed import a_worker_holding_tasks

DEVICES, TASKS_PER_DEVICE = 5, 4
CALL_TIMEOUT, LEASE_MARGIN = 3.0, 1.0
LEASE = CALL_TIMEOUT + LEASE_MARGIN
KILLED_TASKS = 10  # one per device
KILL_DELAY = 2.0  # the stub's delay in the kill test: below the call timeout, as assumed
LEASE_SETTINGS = {"SERVICE_A_TIMEOUT_SECONDS": str(CALL_TIMEOUT),
                  "EQUIPMENT_LEASE_MARGIN_SECONDS": str(LEASE_MARGIN)}
OVERLAPS = "equipment_stub_overlapping_calls_total"
LEASE_WAITS = "provisioning_worker_equipment_lease_waits_total"
COMPLETED = "200 200 Completed"


async def several_tasks_per_device(platform: FaultPlatform, ledger: Ledger) -> None:
    devices = [equipment() for _ in range(DEVICES)]
    await asyncio.gather(*(ledger.create(platform.client, device)
                           for device in devices for _ in range(TASKS_PER_DEVICE)))
    assert len(ledger.accepted) == DEVICES * TASKS_PER_DEVICE


async def records(platform: FaultPlatform, task_ids: list[str]) -> list[TaskRecord | None]:
    async with TaskStore(RedisSettings.from_env(Environment(platform.environment))) as store:
        return await store.get_many(task_ids)


@pytest.mark.timeout(60)
async def test_in_reject_mode_the_calls_for_one_device_never_overlap(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(EQUIPMENT_CONCURRENCY="parallel", STUB_DELAY_SECONDS="0.5",
                                    **LEASE_SETTINGS)
    await platform.restart_with("worker", EQUIPMENT_CONCURRENCY="reject")
    await several_tasks_per_device(platform, ledger)

    await ledger.settle(platform.statuses, timeout=30)
    answers = await ledger.answers(platform.client)
    ledger.note(overlapping_calls=int(await platform.counter("stub", OVERLAPS)),
                lease_waits=int(await platform.counter("worker", LEASE_WAITS)),
                stub_success_answers=int(await platform.stub_answers("success")))

    assert ledger.lost == {}
    assert answers == {COMPLETED: DEVICES * TASKS_PER_DEVICE}
    assert ledger.notes["overlapping_calls"] == 0
    assert ledger.notes["stub_success_answers"] == DEVICES * TASKS_PER_DEVICE
    assert ledger.notes["lease_waits"] >= DEVICES, "no task ever found its device busy"


@pytest.mark.timeout(60)
async def test_in_parallel_mode_the_calls_for_one_device_do_overlap_at_the_stub(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    """The control: the overlap counter does see overlaps when nothing prevents them."""
    platform = await start_platform(EQUIPMENT_CONCURRENCY="parallel", STUB_DELAY_SECONDS="0.5",
                                    **LEASE_SETTINGS)
    await several_tasks_per_device(platform, ledger)

    await ledger.settle(platform.statuses, timeout=30)
    ledger.note(overlapping_calls=int(await platform.counter("stub", OVERLAPS)),
                lease_waits=int(await platform.counter("worker", LEASE_WAITS)))

    assert ledger.lost == {}
    assert ledger.completed == DEVICES * TASKS_PER_DEVICE
    assert ledger.notes["overlapping_calls"] > 0
    assert ledger.notes["lease_waits"] == 0


async def kill_a_worker_mid_call(start_platform: PlatformFactory, ledger: Ledger, mode: str
                                 ) -> tuple[FaultPlatform, int]:
    """10 tasks on 10 devices; SIGKILL the worker holding most of them while the stub works on
    them; wait until they all settle. The platform, and how many tasks the killed worker held."""
    platform = await start_platform(EQUIPMENT_CONCURRENCY=mode,
                                    STUB_DELAY_SECONDS=str(KILL_DELAY), **LEASE_SETTINGS)
    await ledger.create_many(platform.client, KILLED_TASKS)
    assert len(ledger.accepted) == KILLED_TASKS

    victim, held = await a_worker_holding_tasks(platform, at_least=3, timeout=20)
    platform.kill(victim, signal.SIGKILL)
    await platform.wait_workers(2, timeout=30, without=[victim.pid])
    await ledger.settle(platform.statuses, timeout=40)
    ledger.note(killed_pid=victim.pid, tasks_held_by_killed_worker=held,
                redelivered=redelivered_tasks(platform))
    return platform, held


@pytest.mark.timeout(60)
async def test_in_parallel_mode_a_redelivered_task_overlaps_its_killed_workers_call(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    """The control: the stub counts the killed worker's call as still running."""
    platform, _ = await kill_a_worker_mid_call(start_platform, ledger, "parallel")
    ledger.note(overlapping_calls=int(await platform.counter("stub", OVERLAPS)))

    assert ledger.lost == {}
    assert ledger.completed == KILLED_TASKS
    # Not every held task overlaps: a call killed near the end of its delay may end before its
    # redelivery starts. That some do shows the counter sees a dead worker's call.
    assert ledger.notes["overlapping_calls"] > 0


@pytest.mark.timeout(60)
async def test_a_task_redelivered_from_a_killed_worker_waits_for_the_lease_and_overlaps_nothing(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform, held = await kill_a_worker_mid_call(start_platform, ledger, "reject")
    redelivered = sorted({entry["task_id"] for entry in platform.log_entries("worker")
                          if entry["message"] == "task running" and entry.get("redelivered")})
    found = await records(platform, redelivered)
    # A redelivered call starts no sooner than one lease after its first call started (after
    # the task's creation), and takes the stub's delay: without the lease it would start at once.
    durations = [record.finished_at - record.created_at for record in found
               if record is not None and record.finished_at is not None]
    waits = await platform.counter("worker", LEASE_WAITS)
    waited = await platform.counter("worker", "provisioning_worker_equipment_lease_wait_seconds_sum")
    ledger.note(lease_waits=int(waits),
                mean_lease_wait_seconds=round(waited / waits, 2) if waits else 0.0,
                fastest_redelivered_task_seconds=round(min(durations), 2) if durations else None,
                overlapping_calls=int(await platform.counter("stub", OVERLAPS)))
    depths = await platform.wait_queues_empty(timeout=15)

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (KILLED_TASKS, 0)
    assert ledger.notes["overlapping_calls"] == 0
    assert len(redelivered) >= held, "the killed worker's tasks were not redelivered"
    assert waits >= held, "a redelivered task did not wait for its device's lease"
    assert 0 < waited / waits <= LEASE
    assert len(durations) == len(redelivered)
    assert min(durations) >= LEASE + KILL_DELAY - 0.3
    assert {queue: (d.ready, d.unacked) for queue, d in depths.items()} == dict.fromkeys(
        platform.queues, (0, 0))
