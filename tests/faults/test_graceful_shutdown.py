"""Fault 6: SIGTERM to the worker pool and to Service B while tasks are in flight.

On SIGTERM a worker process stops taking tasks, finishes those it holds within
``WORKER_SHUTDOWN_GRACE_SECONDS`` and hands the rest back unacked; Service B stops its results
consumer the same way. Nothing is left unacknowledged once they are gone, and after they start
again every task they accepted reaches a final status.
"""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger

TASKS = 200
LOAD_LIMIT = 1000
STUB_DELAY = "2"
COMPLETED = "200 200 Completed"
STOP_MARGIN_SECONDS = 10


def logged_counts(platform: FaultPlatform, component: str, pattern: str) -> list[int]:
    """The number in each log message of the component that matches ``pattern`` (one group)."""
    found = (re.fullmatch(pattern, entry["message"]) for entry in platform.log_entries(component))
    return [int(match.group(1)) for match in found if match]


async def settle(platform: FaultPlatform, ledger: Ledger) -> None:
    await ledger.settle(platform.statuses, timeout=60)


@pytest.mark.parametrize(("grace", "held_tasks_finish"), [("10", True), ("0.5", False)],
                         ids=["grace-longer-than-a-call", "grace-shorter-than-a-call"])
@pytest.mark.timeout(120)
async def test_sigterm_to_the_worker_pool_mid_load_loses_no_task_and_leaves_none_unacked(
    start_platform: PlatformFactory, ledger: Ledger, grace: str, held_tasks_finish: bool
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS=STUB_DELAY,
                                    WORKER_SHUTDOWN_GRACE_SECONDS=grace)
    await ledger.create_many(platform.client, TASKS)
    assert len(ledger.accepted) == TASKS
    await platform.wait_counter("stub", "equipment_stub_requests_in_progress", TASKS // 2, timeout=20)

    exit_code, stop_seconds = await platform.stop("worker", signal.SIGTERM)
    after_stop = await platform.wait_released(platform.environment["TASKS_QUEUE"], timeout=10)
    await platform.start("worker")
    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    depths = await platform.wait_queues_empty(timeout=20)
    ledger.note(
        grace_seconds=float(grace),
        pool_exit_code=exit_code,
        pool_stop_seconds=round(stop_seconds, 1),
        in_flight_at_sigterm=sum(logged_counts(
            platform, "worker", r"stopping: no new tasks; finishing (\d+) in flight")),
        handed_back=sum(logged_counts(
            platform, "worker", r"handing (\d+) unfinished tasks back to the queue")),
        tasks_ready_after_stop=after_stop.ready,
        tasks_unacked_after_stop=after_stop.unacked,
    )

    assert exit_code == 0
    assert stop_seconds < float(grace) + STOP_MARGIN_SECONDS
    assert after_stop.unacked == 0, "the stopped pool left tasks unacknowledged"
    if held_tasks_finish:
        assert ledger.notes["handed_back"] == 0 and after_stop.ready == 0
    else:
        assert ledger.notes["handed_back"] > 0 and after_stop.ready > 0
    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS, 0)
    assert answers == {COMPLETED: TASKS}
    assert {q: (d.ready, d.unacked) for q, d in depths.items()} == dict.fromkeys(platform.queues, (0, 0))


@pytest.mark.timeout(120)
async def test_sigterm_to_service_b_mid_load_loses_no_accepted_task_and_leaves_none_unacked(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS=STUB_DELAY)
    stop_load = asyncio.Event()
    load = asyncio.create_task(ledger.steady_load(platform.client, stop_load, per_second=20,
                                                  limit=LOAD_LIMIT))
    try:
        await platform.wait_counter("stub", "equipment_stub_requests_in_progress", 20, timeout=20)
        # Sanic serves requests already on a kept-alive connection during its graceful stop.
        exit_code, stop_seconds = await platform.stop("api", signal.SIGTERM)
        accepted_before = len(ledger.accepted)
        await asyncio.sleep(2.5)  # the workers finish their calls: results wait in their queue
        while_down = await platform.wait_released(platform.environment["RESULTS_QUEUE"],
                                                  timeout=10)
        await platform.start("api")
        await ledger.wait_accepted(accepted_before + 20, timeout=20)  # the load goes on
    finally:
        stop_load.set()
        await asyncio.wait_for(load, 60)

    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    depths = await platform.wait_queues_empty(timeout=20, dead_letters=False)
    ledger.note(
        accepted_before_sigterm=accepted_before,
        accepted_after_restart=len(ledger.accepted) - accepted_before,
        api_exit_code=exit_code,
        api_stop_seconds=round(stop_seconds, 1),
        results_waiting_while_down=while_down.ready,
        results_unacked_while_down=while_down.unacked,
        # A create whose publish confirm timed out is answered 500 though its task may be
        # queued: it is then worked on and its result dead-lettered as an unknown task.
        dead_lettered_results=depths[platform.queues[3]].ready,
    )

    assert exit_code == 0
    assert ledger.notes["accepted_after_restart"] > 0
    assert while_down.unacked == 0, "the stopped Service B left results unacknowledged"
    assert while_down.ready > 0, "no result waited for Service B"
    assert ledger.unexpected == {}
    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (len(ledger.accepted), 0)
    assert answers == {COMPLETED: len(ledger.accepted)}
    work_queues = platform.queues[:2]
    assert {q: (depths[q].ready, depths[q].unacked) for q in work_queues} == dict.fromkeys(
        work_queues, (0, 0))
