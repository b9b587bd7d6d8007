"""Tallying the task store's records poll after poll: final tasks counted once with their
overhead, open ones kept, what is left at the deadline lost with its last status."""

from __future__ import annotations

from bench.outcomes import MISSING, Outcomes
from provisioning.models import FailureReason, TaskRecord, TaskStatus


def record(task_id: str, status: TaskStatus, *, created: float = 100.0, finished: float | None = None
           ) -> TaskRecord:
    failure = FailureReason.REJECTED_BY_SERVICE_A if status is TaskStatus.FAILED else None
    return TaskRecord(task_id=task_id, equipment_id="BENCH1", status=status, created_at=created,
                      updated_at=created, failure=failure, finished_at=finished)


def test_final_tasks_are_counted_with_their_time_past_the_delay_and_open_ones_kept() -> None:
    outcomes = Outcomes(submitted=4)
    ids = ["a", "b", "c", "d"]
    records = [record("a", TaskStatus.COMPLETED, finished=102.5), record("b", TaskStatus.FAILED, finished=101.0),
               record("c", TaskStatus.RUNNING), None]
    still_open, running = outcomes.count(ids, records, delay=2.0)
    assert still_open == ["c", "d"]
    assert running == 1
    assert (outcomes.completed, outcomes.failed) == (1, 1)
    assert outcomes.overheads == [0.5, -1.0]


def test_a_task_final_in_a_later_poll_is_counted_then_and_not_lost() -> None:
    outcomes = Outcomes(submitted=1)
    still_open, _ = outcomes.count(["a"], [record("a", TaskStatus.PENDING)], delay=0.0)
    still_open, _ = outcomes.count(still_open, [record("a", TaskStatus.COMPLETED, finished=101.0)], delay=0.0)
    outcomes.close(still_open, at=5.0)
    assert (outcomes.completed, outcomes.lost, dict(outcomes.lost_statuses)) == (1, 0, {})


def test_what_is_open_at_the_deadline_is_lost_with_the_status_it_had_last() -> None:
    outcomes = Outcomes(submitted=3)
    still_open, _ = outcomes.count(["a", "b", "c"], [record("a", TaskStatus.PENDING), record("b", TaskStatus.RUNNING),
                                                     None], delay=0.0)
    outcomes.close(still_open, at=9.0)
    assert outcomes.lost == 3
    assert dict(outcomes.lost_statuses) == {"pending": 1, "running": 1, MISSING: 1}
    assert outcomes.done_at == 9.0


def test_the_peak_of_running_tasks_keeps_the_highest_and_when() -> None:
    outcomes = Outcomes()
    for running, at in ((3, 1.0), (7, 2.0), (5, 3.0)):
        outcomes.note_running(running, at)
    assert (outcomes.peak_running, outcomes.peak_running_at) == (7, 2.0)


def test_a_final_record_without_its_finish_time_counts_but_adds_no_overhead() -> None:
    outcomes = Outcomes(submitted=1)
    outcomes.count(["a"], [record("a", TaskStatus.COMPLETED, finished=None)], delay=1.0)
    assert (outcomes.completed, outcomes.overheads) == (1, [])
