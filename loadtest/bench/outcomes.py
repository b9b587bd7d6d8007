"""Following the submitted tasks to their end through the task store's own reads, so that the
benchmark counts what the platform recorded, whatever the record's fields are called.

A task still not final when the deadline passes counts as lost, with the status it had last
("missing" when there was no record at all).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from provisioning.environment import Environment
from provisioning.models import TaskRecord, TaskStatus
from provisioning.settings import RedisSettings
from provisioning.store import TaskStore

READ_BATCH = 5000  # tasks per pipelined read
MISSING = "missing"


@dataclass
class Outcomes:
    """The tally of one run's tasks, poll after poll."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    lost_statuses: Counter[str] = field(default_factory=Counter)
    overheads: list[float] = field(default_factory=list)  # seconds beyond the stub's delay
    peak_running: int = 0
    peak_running_at: float = 0.0
    done_at: float = 0.0
    last_status: dict[str, str] = field(default_factory=dict)  # of the tasks still open

    def count(self, task_ids: Sequence[str], records: Sequence[TaskRecord | None], delay: float
              ) -> tuple[list[str], int]:
        """Tally the final tasks among one read; (the task ids still open, how many run now)."""
        still_open: list[str] = []
        running = 0
        for task_id, record in zip(task_ids, records, strict=True):
            if record is not None and record.status.is_final:
                if record.status is TaskStatus.COMPLETED:
                    self.completed += 1
                else:
                    self.failed += 1
                if record.finished_at is not None:
                    self.overheads.append(record.finished_at - record.created_at - delay)
                self.last_status.pop(task_id, None)
                continue
            running += record is not None and record.status is TaskStatus.RUNNING
            still_open.append(task_id)
            self.last_status[task_id] = MISSING if record is None else record.status.value
        return still_open, running

    def note_running(self, running: int, at: float) -> None:
        if running > self.peak_running:
            self.peak_running, self.peak_running_at = running, at

    def close(self, open_tasks: Sequence[str], at: float) -> None:
        """The deadline passed (or nothing is left): what is still open is lost."""
        self.lost = len(open_tasks)
        self.lost_statuses = Counter(self.last_status.get(task_id, MISSING) for task_id in open_tasks)
        self.done_at = at


async def follow_outcomes(environment: Mapping[str, str], tasks: Sequence[str], delay: float,
                          deadline: float, interval: float = 2.0,
                          progress: Callable[[Outcomes, int, int], None] | None = None,
                          progress_every: float = 10.0) -> Outcomes:
    """Read the task records until every task is final or the deadline (monotonic) passes;
    ``progress(outcomes, running, still open)`` every ``progress_every`` seconds meanwhile."""
    outcomes = Outcomes(submitted=len(tasks))
    open_tasks = list(tasks)
    reported_at = time.monotonic()
    async with TaskStore(RedisSettings.from_env(Environment(environment))) as store:
        while open_tasks:
            still_open: list[str] = []
            running = 0
            for start in range(0, len(open_tasks), READ_BATCH):
                batch = open_tasks[start:start + READ_BATCH]
                batch_open, batch_running = outcomes.count(batch, await store.get_many(batch), delay)
                still_open += batch_open
                running += batch_running
            outcomes.note_running(running, time.monotonic())
            open_tasks = still_open
            if progress is not None and time.monotonic() - reported_at >= progress_every:
                progress(outcomes, running, len(open_tasks))
                reported_at = time.monotonic()
            if not open_tasks or time.monotonic() > deadline:
                break
            await asyncio.sleep(interval)
    outcomes.close(open_tasks, time.monotonic())
    return outcomes


async def read_finished(environment: Mapping[str, str], tasks: Sequence[str]
                        ) -> dict[str, tuple[float | None, str]]:
    """One read of every task's record: task id -> (``finished_at``, status), (None,
    "missing") when there is no record."""
    finished: dict[str, tuple[float | None, str]] = {}
    async with TaskStore(RedisSettings.from_env(Environment(environment))) as store:
        for start in range(0, len(tasks), READ_BATCH):
            batch = list(tasks[start:start + READ_BATCH])
            for task_id, record in zip(batch, await store.get_many(batch), strict=True):
                finished[task_id] = (None, MISSING) if record is None else (record.finished_at,
                                                                           record.status.value)
    return finished
