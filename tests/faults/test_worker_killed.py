"""Fault 1: a worker process is killed (SIGKILL) while it holds tasks in flight.

RabbitMQ redelivers the tasks the dead process held to the other worker process (and to the
one the pool starts in its place), so every task still completes; and since a task is marked
completed only from a result that a worker published after Service A answered 200, no more
tasks are completed than the stub answered with success.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from .harness import FaultPlatform, PlatformFactory, WorkerProcess, redelivered_tasks
from .ledger import Ledger

TASKS = 100
COMPLETED = "200 200 Completed"


async def a_worker_holding_tasks(platform: FaultPlatform, at_least: int, timeout: float
                                 ) -> tuple[WorkerProcess, int]:
    """The worker process holding the most tasks, once it holds ``at_least`` while the stub
    is answering them (so they are in the middle of their Service A call)."""
    deadline = time.monotonic() + timeout
    while True:
        held = {worker: await platform.worker_in_flight(worker) for worker in platform.workers()}
        at_stub = await platform.counter("stub", "equipment_stub_requests_in_progress")
        if held:
            victim = max(held, key=lambda worker: held[worker])
            if held[victim] >= at_least and at_stub >= at_least:
                return victim, held[victim]
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker held {at_least} tasks at the stub: {held}")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_a_worker_killed_with_tasks_in_flight_loses_none_and_completes_none_unanswered(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS="2", WORKER_PROCESSES="2")
    await ledger.create_many(platform.client, TASKS)
    assert len(ledger.accepted) == TASKS

    victim, held = await a_worker_holding_tasks(platform, at_least=10, timeout=20)
    platform.kill(victim, signal.SIGKILL)
    replacement = await platform.wait_workers(2, timeout=30, without=[victim.pid])

    await ledger.settle(platform.statuses, timeout=60)
    successes = await platform.stub_answers("success")
    answers = await ledger.answers(platform.client)
    depths = await platform.wait_queues_empty(timeout=15)
    ledger.note(
        killed_pid=victim.pid,
        tasks_held_by_killed_worker=held,
        redelivered=redelivered_tasks(platform),
        stub_success_answers=int(successes),
        pool_restarted_worker=victim.index in [w.index for w in replacement],
    )

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS, 0)
    assert answers == {COMPLETED: TASKS}
    assert ledger.completed <= successes, "a task was completed that Service A never answered"
    assert ledger.notes["redelivered"] >= held, "the killed worker's tasks were not redelivered"
    assert ledger.notes["pool_restarted_worker"]
    assert {queue: (d.ready, d.unacked) for queue, d in depths.items()} == dict.fromkeys(
        platform.queues, (0, 0))
