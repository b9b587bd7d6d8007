"""Fault: RabbitMQ's resource alarms (memory, then disk) block every publishing connection.

While an alarm is in effect RabbitMQ reads nothing more from a connection that publishes and
says so with ``connection.blocked``. Service B notices it and answers creates 503 with
``Retry-After`` at once (not after a confirm timeout per request), leaving no record that could
run; /health stays 200 naming the block; the ``provisioning_amqp_blocked`` gauge is 1. Workers
that finish a task meanwhile hold its result (the task stays unacked) and publish it once the
alarm clears. Nothing accepted is lost and creates are accepted again once the alarm clears.
Per case the test prints (and writes to ``reports/faults/``): tasks sent, accepted, completed,
failed, lost, the worst create answer time during the alarm, the recovery time (from RabbitMQ
unblocking Service B's connection, as its log says, to the first create accepted again) and the
time from the workers' unblock until every task accepted before it is final (the held results).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from cpe_devkit.client import create_path, request_body
from cpe_devkit.processes import http_get

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger, equipment
from .test_rabbitmq_restart import task_records

LOAD_PER_SECOND = 10
BEFORE_SECONDS = 3.0  # tasks queued, running and finishing before the alarm
ALARM_SECONDS = 6.0  # the alarm held: longer than a task (STUB_DELAY_SECONDS=1), so results wait
AFTER_SECONDS = 3.0
# Far above what a refusal may take: an answer waiting for a confirm would show.
PUBLISH_TIMEOUT_SECONDS = 20.0
OVERLOADED = {"code": 503, "message": "Service is overloaded, retry later"}
RETRY_AFTER = "5"
COMPLETED = "200 200 Completed"
# The node lists an alarm a moment before every connection's reader has heard of it.
PROPAGATION_SECONDS = 0.5


Answer = tuple[float, int, dict[str, object], str | None]  # seconds, status, body, Retry-After


@dataclass
class AlarmLoad:
    """Creates at a steady pace, each timed and filed by when it was sent: ``before`` the
    alarm; at its ``onset`` (the limit changed, the alarm not yet seen by ``rabbitmqctl``);
    ``during`` it (surely in effect); at its ``offset`` (the default limit being put back, the
    alarm not    yet seen gone); ``after``. Accepted ones go to the ledger."""

    platform: FaultPlatform
    ledger: Ledger
    marks: dict[str, float] = field(default_factory=dict)  # phase -> monotonic start
    answered: dict[str, list[Answer]] = field(default_factory=dict)
    accepted_at: list[float] = field(default_factory=list)  # time.time() of each 200

    async def create(self) -> None:
        session = self.platform.client.session
        equipment_id = equipment()
        self.ledger.sent += 1
        sent = time.monotonic()
        url = f"{self.platform.stack.api_url}{create_path(equipment_id)}"
        async with session.post(url, json=request_body()) as response:
            status, answer = response.status, await response.json()
            retry_after = response.headers.get("Retry-After")
        took = time.monotonic() - sent
        self.answered.setdefault(self.phase(sent), []).append((took, status, answer, retry_after))
        if status == 200:
            self.ledger.accepted[answer["taskId"]] = equipment_id
            self.accepted_at.append(time.time())

    def mark(self, phase: str) -> None:
        self.marks[phase] = time.monotonic()

    def phase(self, at: float) -> str:
        current = "before"
        for phase, started in self.marks.items():  # in the order marked
            if at >= started:
                current = phase
        return current

    def of(self, *phases: str) -> list[Answer]:
        return [answer for phase in phases for answer in self.answered.get(phase, [])]

    def counted(self) -> dict[str, int]:
        return dict(Counter(f"{phase} {status}" for phase, answers in self.answered.items()
                            for _, status, _, _ in answers))

    async def run(self, stop: asyncio.Event) -> None:
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            task = asyncio.create_task(self.create())
            pending.add(task)
            task.add_done_callback(pending.discard)
            try:
                await asyncio.wait_for(stop.wait(), 1 / LOAD_PER_SECOND)
            except TimeoutError:
                pass
        if pending:
            await asyncio.wait(pending, timeout=30)


async def final_at(platform: FaultPlatform, task_ids: list[str], timeout: float) -> float | None:
    """When (``time.time()``) every one of the tasks was seen final, polled every 0.1 s; None
    past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = await platform.statuses(task_ids)
        if all(status in {"completed", "failed"} for status in statuses.values()):
            return time.time()
        await asyncio.sleep(0.1)
    return None


def unblocked_at(platform: FaultPlatform, component: str) -> float | None:
    """When (``time.time()``) the component's last process logged that RabbitMQ unblocked it."""
    times = [float(entry["ts"]) for entry in platform.log_entries(component)
             if str(entry.get("message", "")).endswith("unblocked publishing")]
    return max(times, default=None)


def since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 2)


def worker_health(platform: FaultPlatform, index: int) -> dict[str, object]:
    port = int(platform.environment["WORKER_METRICS_PORT"]) + index
    _, body = http_get(f"http://127.0.0.1:{port}/health")
    return dict(json.loads(body))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("resource", ["memory", "disk"])
async def test_a_resource_alarm_answers_503_at_once_holds_results_and_loses_nothing(
    start_platform: PlatformFactory, ledger: Ledger, resource: str
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS="1",
                                    PUBLISH_TIMEOUT_SECONDS=str(PUBLISH_TIMEOUT_SECONDS))
    rabbit = platform.rabbit
    load = AlarmLoad(platform, ledger)
    stop_load = asyncio.Event()
    running = asyncio.create_task(load.run(stop_load))
    cleared = False
    try:
        await asyncio.sleep(BEFORE_SECONDS)
        accepted_before = set(ledger.accepted)
        load.mark("onset")
        await asyncio.to_thread(rabbit.provoke_alarm, resource)
        await asyncio.to_thread(rabbit.wait_alarm, resource, True)
        await asyncio.sleep(PROPAGATION_SECONDS)
        load.mark("during")
        await asyncio.sleep(ALARM_SECONDS / 2)
        health_during = await platform.health()
        some_task = next(iter(accepted_before))
        read_during = await platform.client.status(ledger.accepted[some_task], some_task)
        workers_during = [worker_health(platform, index)
                          for index in range(int(platform.environment["WORKER_PROCESSES"]))]
        blocked_gauge_api = await platform.counter("api", "provisioning_amqp_blocked")
        blocked_gauge_workers = await platform.counter("worker", "provisioning_amqp_blocked")
        held_during = (await platform.queue_depths())[platform.queues[0]].unacked
        statuses_mid = await platform.statuses(list(accepted_before))
        await asyncio.sleep(ALARM_SECONDS / 2)
        statuses_late = await platform.statuses(list(accepted_before))
        load.mark("offset")  # before the command: the alarm may clear before it returns
        held_final = asyncio.create_task(  # every task accepted so far, the held ones among them
            final_at(platform, list(ledger.accepted), timeout=30))
        await asyncio.to_thread(rabbit.restore_alarm_limit, resource)
        cleared = True
        await asyncio.to_thread(rabbit.wait_alarm, resource, False)
        load.mark("after")
        await asyncio.sleep(AFTER_SECONDS)
    finally:
        stop_load.set()
        await asyncio.wait_for(running, 60)
        if not cleared:
            await asyncio.to_thread(rabbit.clear_alarm, resource)

    await ledger.settle(platform.statuses, timeout=60)
    held_results_final = await held_final
    api_unblocked, workers_unblocked = unblocked_at(platform, "api"), unblocked_at(platform, "worker")
    answers = await ledger.answers(platform.client)
    records = await task_records(platform)
    depths = await platform.wait_queues_empty(timeout=20, dead_letters=False)
    blocked_after = await platform.counter("api", "provisioning_amqp_blocked")
    fault = load.of("onset", "during", "offset")
    worst_during = max((took for took, *_ in fault), default=0.0)
    recovery = since(api_unblocked, min((at for at in load.accepted_at
                                         if api_unblocked is not None and at > api_unblocked),
                                        default=None))
    ledger.note(
        alarm=resource,
        answers_by_phase=load.counted(),
        refused_503=sum(1 for _, status, *_ in fault if status == 503),
        worst_answer_seconds_during_alarm=round(worst_during, 3),
        recovery_seconds=recovery,
        # From the workers' unblock until every task accepted before the restore is final: the
        # held results published, and the tasks still calling Service A then finished.
        held_results_final_seconds=since(workers_unblocked, held_results_final),
        tasks_held_unacked_during_alarm=held_during,
        health_during_alarm=health_during,
        worker_health_during_alarm=workers_during,
    )
    figures = ledger.figures()
    print(f"\n{resource} alarm: sent {figures['sent']}, accepted {figures['accepted']}, "
          f"completed {figures['completed']}, failed {figures['failed']}, lost {figures['lost']}, "
          f"worst answer during the alarm {worst_during:.3f} s, recovery {recovery} s "
          f"(held results final {ledger.notes['held_results_final_seconds']} s after the workers' unblock)")

    # During the alarm: every create answered 503 with Retry-After, at once, but one whose
    # publish, cut short in flight by the block, a worker took all the same (it runs and
    # completes); around it (the alarm coming or going) either that or accepted.
    assert load.of("during"), "no create was sent during the alarm"
    refusal = (503, str(OVERLOADED), RETRY_AFTER)
    taken_anyway = platform.logged_tasks("api", "publish unconfirmed, but a worker already took")
    accepted_during = {str(body["taskId"]) for _, status, body, _ in load.of("during")
                       if status == 200}
    ledger.note(accepted_during_alarm=sorted(accepted_during), taken_anyway=len(taken_anyway))
    assert accepted_during <= taken_anyway, "a create was accepted while the broker was blocked"
    assert all(status == 200 or (status, str(body), retry_after) == refusal
               for _, status, body, retry_after in load.of("during"))
    assert all(status == 200 or (status, str(body), retry_after) == refusal
               for _, status, body, retry_after in fault)
    assert worst_during < PUBLISH_TIMEOUT_SECONDS / 4, "a create waited for a confirm"
    status, body = health_during
    assert status == 200 and body["rabbitmq"] is True
    assert read_during[0] == 200, "a status read failed during the alarm"  # Redis only
    assert body["rabbitmqBlocked"] == f"low on {resource}"
    assert blocked_gauge_api >= 1 and blocked_after == 0
    # Workers hold the results of the tasks they finished: unacked, not final, until it clears.
    assert held_during > 0
    assert blocked_gauge_workers >= 1
    assert any(health.get("rabbitmqBlocked") == f"low on {resource}" for health in workers_during)
    assert all(health["status"] == "ok" for health in workers_during)
    finished_during = {task for task, found in statuses_late.items()
                       if found in {"completed", "failed"} and statuses_mid.get(task) != found}
    assert not finished_during, "a result got through while the broker was blocked"

    # After: accepted again, everything accepted finishes, refused creates left nothing to run.
    assert api_unblocked is not None and workers_unblocked is not None
    assert recovery is not None, "no create was accepted after the alarm cleared"
    assert held_results_final is not None, "tasks accepted before the alarm cleared never finished"
    assert ledger.unanswered == 0
    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (len(ledger.accepted), 0)
    assert answers == {COMPLETED: len(ledger.accepted)}
    refused = {task: records[task] for task in records.keys() - set(ledger.accepted)}
    assert set(refused.values()) <= {("failed", "not_queued")}, \
        "a create answered 503 left a task record that could still run"
    for queue in platform.queues[:2]:
        assert (depths[queue].ready, depths[queue].unacked) == (0, 0), depths
