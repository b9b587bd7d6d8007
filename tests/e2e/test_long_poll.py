"""Long-poll on the classic status route (``?wait=``), on real processes: the answer comes when
the task ends, or when the wait is up with the classic still-running body; a bad wait is a
precise 400; waiters are bounded apart from the in-flight limit and released on hang-up."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from cpe_devkit.client import Client, status_path
from cpe_devkit.probes import component_total
from cpe_devkit.stack import Stack, throwaway_stack
from provisioning.environment import Environment
from provisioning.models import TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore
from tests.support.platforms import FAILING_ID, STUB_DELAY_SECONDS, e2e_environment
from tests.support.task_routes import client_fixture, client_of, detail, module_platform

COMPLETED = {"code": 200, "message": "Completed"}
STILL_RUNNING = {"code": 204, "message": "Task is still running"}
INTERNAL_ERROR = {"code": 500, "message": "Internal provisioning exception"}
TASK_NOT_FOUND = {"code": 404, "message": "The requested task is not found"}
MAX_WAIT = 3  # STATUS_MAX_WAIT_SECONDS of the idle platform
MAX_WAITERS = 4  # API_MAX_WAITERS of the idle platform
# How late an answer may come after the final status was written (a notice, then one read).
NOTICE_BOUND_SECONDS = 0.5

# Service B and the stub only: every task stays pending unless the test moves it.
idle_platform = module_platform("long-poll-idle", only=("stub", "api"),
                                STATUS_MAX_WAIT_SECONDS=str(MAX_WAIT),
                                API_MAX_WAITERS=str(MAX_WAITERS))
idle_client = client_fixture("idle_platform")


def equipment() -> str:
    return f"LP{uuid.uuid4().hex[:10]}"


async def long_poll(client: Client, equipment_id: str, task_id: str, wait: str
                    ) -> tuple[int, dict[str, object], float]:
    """The answer, and when it arrived (epoch seconds)."""
    url = f"{client.base}{status_path(equipment_id, task_id)}"
    async with client.session.get(url, params={"wait": wait}) as response:
        body = await response.json()
        return response.status, body, time.time()


def epoch(iso: object) -> float:
    assert isinstance(iso, str)
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
async def store(idle_platform: Stack) -> AsyncIterator[TaskStore]:
    """The platform's task store, to end tasks from outside Service B."""
    async with TaskStore(RedisSettings.from_env(Environment(idle_platform.environment))) as store:
        yield store


async def test_a_long_poll_answers_as_soon_as_the_task_completes(client: Client) -> None:
    equipment_id = equipment()
    _, created = await client.create(equipment_id)
    started = time.monotonic()
    status, body, arrived = await long_poll(client, equipment_id, created["taskId"], "20")
    assert (status, body) == (200, COMPLETED)
    assert time.monotonic() - started < 20 / 2  # answered by the completion, not the wait
    _, task = await detail(client, created["taskId"])
    assert 0 <= arrived - epoch(task["finishedAt"]) < NOTICE_BOUND_SECONDS


async def test_a_long_poll_of_a_failing_task_answers_the_classic_failure(client: Client) -> None:
    _, created = await client.create(FAILING_ID)
    status, body, _ = await long_poll(client, FAILING_ID, created["taskId"], "20")
    assert (status, body) == (500, INTERNAL_ERROR)


async def test_a_long_poll_answers_still_running_when_its_wait_is_up(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    started = time.monotonic()
    status, body, _ = await long_poll(idle_client, equipment_id, created["taskId"], "1")
    assert (status, body) == (200, STILL_RUNNING)
    assert 1.0 <= time.monotonic() - started < 1.0 + 2


async def test_a_wait_above_the_cap_is_cut_to_it(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    started = time.monotonic()
    status, body, _ = await long_poll(idle_client, equipment_id, created["taskId"], "600")
    assert (status, body) == (200, STILL_RUNNING)
    assert MAX_WAIT <= time.monotonic() - started < MAX_WAIT + 2


async def test_wait_zero_answers_at_once_and_no_wait_answers_as_always(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    started = time.monotonic()
    assert (await long_poll(idle_client, equipment_id, created["taskId"], "0"))[:2] == (200, STILL_RUNNING)
    assert await idle_client.status(equipment_id, created["taskId"]) == (200, STILL_RUNNING)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("wait", ["", "soon", "-1", "1e3", "nan", "inf", "2.5001", "0x10", " 5",
                                  "9999999"])
async def test_a_bad_wait_is_a_precise_400(idle_client: Client, wait: str) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    status, body, _ = await long_poll(idle_client, equipment_id, created["taskId"], wait)
    assert (status, body) == (400, {
        "code": 400,
        "message": f"wait must be a number of seconds such as 10 or 2.5 (at most {MAX_WAIT}; "
                   "longer waits are cut to it)",
    })


async def test_wait_given_twice_is_a_400(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    url = f"{idle_client.base}{status_path(equipment_id, created['taskId'])}?wait=1&wait=2"
    async with idle_client.session.get(url) as response:
        assert (response.status, await response.json()) == (
            400, {"code": 400, "message": "wait must be given at most once"})


async def test_a_long_poll_of_an_unknown_or_foreign_task_is_404_at_once(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    started = time.monotonic()
    assert (await long_poll(idle_client, equipment_id, str(uuid.uuid4()), "3"))[:2] == (404, TASK_NOT_FOUND)
    assert (await long_poll(idle_client, equipment(), created["taskId"], "3"))[:2] == (404, TASK_NOT_FOUND)
    assert time.monotonic() - started < 1


async def test_a_completion_written_by_another_process_wakes_the_long_poll(
    idle_client: Client, store: TaskStore,
) -> None:
    """The final write comes from this test process, not Service B: only Redis carries it."""
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    poll = asyncio.create_task(long_poll(idle_client, equipment_id, created["taskId"], str(MAX_WAIT)))
    await asyncio.sleep(0.5)
    written = time.time()
    await store.transition(created["taskId"], TaskStatus.COMPLETED, attempts=1)
    status, body, arrived = await poll
    assert (status, body) == (200, COMPLETED)
    assert arrived - written < NOTICE_BOUND_SECONDS


async def test_a_completion_racing_the_long_polls_registration_is_never_missed(
    idle_client: Client, store: TaskStore,
) -> None:
    """Completions land at random moments around the long-poll's arrival: a waiter that read
    the record before registering would sleep through some of them until its wait ran out."""
    rounds = 40
    tasks = []
    for _ in range(rounds):
        equipment_id = equipment()
        _, created = await idle_client.create(equipment_id)
        tasks.append((equipment_id, created["taskId"]))

    async def race(equipment_id: str, task_id: str) -> float:
        started = time.monotonic()
        poll = asyncio.create_task(long_poll(idle_client, equipment_id, task_id, str(MAX_WAIT)))
        await asyncio.sleep(random.uniform(0, 0.02))
        await store.transition(task_id, TaskStatus.COMPLETED, attempts=1)
        status, body, _ = await poll
        assert (status, body) == (200, COMPLETED)
        return time.monotonic() - started

    durations: list[float] = []
    for batch in range(0, rounds, MAX_WAITERS):  # as many at once as the platform holds
        durations += await asyncio.gather(*(race(*task) for task in tasks[batch:batch + MAX_WAITERS]))
    assert max(durations) < MAX_WAIT / 2, sorted(durations)[-5:]


async def test_long_polls_count_against_their_own_limit_not_the_in_flight_one(
    idle_platform: Stack, idle_client: Client,
) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    held = [asyncio.create_task(long_poll(idle_client, equipment_id, created["taskId"], str(MAX_WAIT)))
            for _ in range(MAX_WAITERS)]
    await until_waiters(idle_platform.environment, MAX_WAITERS)
    url = f"{idle_client.base}{status_path(equipment_id, created['taskId'])}"
    async with idle_client.session.get(url, params={"wait": "1"}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
    # A plain status read is not a waiter: it is answered as always.
    assert await idle_client.status(equipment_id, created["taskId"]) == (200, STILL_RUNNING)
    for poll in await asyncio.gather(*held):
        assert poll[:2] == (200, STILL_RUNNING)
    assert component_total(idle_platform.environment, "api", "provisioning_api_waiters_refused_total") >= 1


async def test_a_client_that_hangs_up_releases_its_waiter_at_once(
    idle_platform: Stack, idle_client: Client,
) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    async with client_of(idle_platform) as impatient:
        polls = [asyncio.create_task(long_poll(impatient, equipment_id, created["taskId"], str(MAX_WAIT)))
                 for _ in range(3)]
        await until_waiters(idle_platform.environment, 3)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    # The session is closed: its connections are gone, and so are the waiters, well before
    # their wait would have run out.
    await until_waiters(idle_platform.environment, 0, timeout=MAX_WAIT / 2)


async def until_waiters(environment: Mapping[str, str], count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (held := component_total(environment, "api", "provisioning_api_long_poll_waiters")) != count:
        assert time.monotonic() < deadline, f"{held} long-polls held, expected {count}"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def two_api_processes(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    environment = e2e_environment(cert_dir, api_workers=2)
    with throwaway_stack(environment, tmp_path_factory.mktemp("long-poll-two")) as stack:
        yield stack


two_process_client = client_fixture("two_api_processes")


async def test_long_polls_on_two_service_b_processes_all_answer_on_completion(
    two_api_processes: Stack, two_process_client: Client,
) -> None:
    """Each process consumes results and serves long-polls: a waiter is woken whichever
    process wrote its task's final status."""
    tasks = []
    for _ in range(30):
        equipment_id = equipment()
        _, created = await two_process_client.create(equipment_id)
        tasks.append((equipment_id, created["taskId"]))
    started = time.monotonic()
    answers = await asyncio.gather(*(long_poll(two_process_client, e, t, "20") for e, t in tasks))
    assert [answer[:2] for answer in answers] == [(200, COMPLETED)] * len(tasks)
    assert time.monotonic() - started < STUB_DELAY_SECONDS + 5
    environment = two_api_processes.environment
    per_process = [component_total({**environment, "API_WORKERS": "1",
                                    "API_METRICS_PORT": str(int(environment["API_METRICS_PORT"]) + i)},
                                   "api", "provisioning_api_long_poll_answers_total", outcome="final")
                   for i in range(2)]
    assert sum(per_process) == len(tasks)
