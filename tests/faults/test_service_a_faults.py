"""Fault 4: Service A answers 500, is slower than the call timeout, or is down.

A worker retries connection errors, timeouts and 5xx with exponential backoff, up to
``SERVICE_A_ATTEMPTS`` calls per task: a task completes when Service A recovers within that
budget and ends ``failed`` (500 on its status) when it does not, after exactly that many calls.

Budget here: 6 calls, pauses drawn from [0.5, 1], [1, 2], [1, 2], [1, 2], [1, 2] seconds
(4.5 to 9 s in all), a call timeout of 1.5 s, and the stub answering after 0.3 s.
"""

from __future__ import annotations

import signal
import time

import pytest

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger

ATTEMPTS = 6
SERVICE_A_FAULTS = {
    "STUB_DELAY_SECONDS": "0.3",
    "SERVICE_A_ATTEMPTS": str(ATTEMPTS),
    "SERVICE_A_BACKOFF_SECONDS": "1",
    "SERVICE_A_BACKOFF_MAX_SECONDS": "2",
    "SERVICE_A_TIMEOUT_SECONDS": "1.5",
}
TASKS = 20
COMPLETED = "200 200 Completed"
FAILED = "500 500 Internal provisioning exception"
CALL_ERRORS = "provisioning_service_a_request_duration_seconds_count"
RETRIES = "provisioning_service_a_retries_total"


async def settle(platform: FaultPlatform, ledger: Ledger, timeout: float = 45) -> None:
    await ledger.settle(platform.statuses, timeout=timeout)


@pytest.mark.timeout(90)
async def test_tasks_complete_when_service_a_answers_500_for_a_while_within_the_retry_budget(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(**SERVICE_A_FAULTS)
    await platform.stub_behaviour(failureRatio=1)
    await ledger.create_many(platform.client, TASKS)
    await platform.wait_counter("stub", "equipment_stub_answers_total", TASKS, timeout=15,
                                answer="failure")  # every task's first call failed
    await platform.stub_behaviour(failureRatio=0)

    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    ledger.note(
        stub_500_answers=int(await platform.stub_answers("failure")),
        stub_success_answers=int(await platform.stub_answers("success")),
        retries=int(await platform.counter("worker", RETRIES)),
    )

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS, 0)
    assert answers == {COMPLETED: TASKS}
    assert ledger.notes["retries"] >= TASKS
    assert ledger.notes["stub_success_answers"] == TASKS, "one success per task, no call after it"


@pytest.mark.timeout(90)
async def test_tasks_fail_with_500_when_service_a_answers_500_past_the_retry_budget(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(**SERVICE_A_FAULTS)
    await platform.stub_behaviour(failureRatio=1)
    started = time.monotonic()
    await ledger.create_many(platform.client, TASKS)

    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    ledger.note(
        seconds_to_fail=round(time.monotonic() - started, 1),
        stub_500_answers=int(await platform.stub_answers("failure")),
        retries=int(await platform.counter("worker", RETRIES)),
    )

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (0, TASKS)
    assert answers == {FAILED: TASKS}
    assert ledger.notes["stub_500_answers"] == TASKS * ATTEMPTS, "not exactly the budget's calls"
    assert ledger.notes["retries"] == TASKS * (ATTEMPTS - 1)


@pytest.mark.timeout(90)
async def test_tasks_complete_when_service_a_is_slower_than_the_call_timeout_for_a_while(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(**SERVICE_A_FAULTS)
    await platform.stub_behaviour(delaySeconds=5)
    await ledger.create_many(platform.client, TASKS)
    timed_out = await platform.wait_counter("worker", CALL_ERRORS, TASKS, timeout=15,
                                            outcome="error")  # every first call timed out
    await platform.stub_behaviour(delaySeconds=0.3)

    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    successes = await platform.stub_answers("success")
    ledger.note(
        calls_timed_out=int(await platform.counter("worker", CALL_ERRORS, outcome="error")),
        timed_out_before_recovery=int(timed_out),
        stub_success_answers=int(successes),
        retries=int(await platform.counter("worker", RETRIES)),
    )

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS, 0)
    assert answers == {COMPLETED: TASKS}
    assert ledger.completed <= successes


@pytest.mark.timeout(90)
async def test_tasks_complete_when_service_a_is_down_and_comes_back_on_the_same_port(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(**SERVICE_A_FAULTS)
    outage_started = time.monotonic()
    await platform.stop("stub", signal.SIGTERM)
    await ledger.create_many(platform.client, TASKS)
    refused = await platform.wait_counter("worker", CALL_ERRORS, TASKS, timeout=15,
                                          outcome="error")  # every first call found no stub
    await platform.start("stub")
    outage = time.monotonic() - outage_started

    await settle(platform, ledger)
    answers = await ledger.answers(platform.client)
    ledger.note(
        outage_seconds=round(outage, 1),
        calls_refused_before_recovery=int(refused),
        stub_success_answers=int(await platform.stub_answers("success")),
        retries=int(await platform.counter("worker", RETRIES)),
    )

    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS, 0)
    assert answers == {COMPLETED: TASKS}
    assert ledger.notes["stub_success_answers"] == TASKS
