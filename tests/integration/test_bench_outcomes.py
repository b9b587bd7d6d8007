"""The benchmark follows its tasks through the real task store: it counts what ended, says how
far it got every few seconds while it waits, and counts what is still open at the deadline as
lost, with the status each had last."""

from __future__ import annotations

import time
import uuid

from bench.outcomes import Outcomes, follow_outcomes
from provisioning.models import TaskStatus
from provisioning.store import TaskStore


async def test_the_wait_reports_its_progress_and_ends_open_tasks_as_lost_at_the_deadline(
        run_environment: dict[str, str], store: TaskStore) -> None:
    completed, running, pending = (str(uuid.uuid4()) for _ in range(3))
    for task_id in (completed, running, pending):
        await store.create(task_id, "abcdef1")
    for task_id in (completed, running):
        await store.transition(task_id, TaskStatus.RUNNING)
    await store.transition(completed, TaskStatus.COMPLETED)
    seen: list[tuple[int, int, int]] = []

    def progress(outcomes: Outcomes, running_now: int, still_open: int) -> None:
        seen.append((outcomes.completed, running_now, still_open))

    outcomes = await follow_outcomes(run_environment, [completed, running, pending], delay=0.0,
                                     deadline=time.monotonic() + 0.5, interval=0.1,
                                     progress=progress, progress_every=0.0)

    assert (outcomes.submitted, outcomes.completed, outcomes.failed, outcomes.lost) == (3, 1, 0, 2)
    assert dict(outcomes.lost_statuses) == {"running": 1, "pending": 1}
    assert outcomes.peak_running == 1
    assert seen and set(seen) == {(1, 1, 2)}  # every line: one completed, one running, two open


async def test_the_wait_ends_as_soon_as_every_task_is_final(
        run_environment: dict[str, str], store: TaskStore) -> None:
    task_id = str(uuid.uuid4())
    await store.create(task_id, "abcdef1")
    await store.transition(task_id, TaskStatus.RUNNING)
    await store.transition(task_id, TaskStatus.COMPLETED)
    started = time.monotonic()

    outcomes = await follow_outcomes(run_environment, [task_id], delay=0.0, deadline=started + 30.0)

    assert (outcomes.completed, outcomes.lost) == (1, 0)
    assert outcomes.done_at - started < 5.0  # not held until the deadline
