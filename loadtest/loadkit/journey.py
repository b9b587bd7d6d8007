"""One task's whole journey as a client lives it: create, poll like a sensible client (or
long-poll: ``?wait=``) until it is final, and report the whole task as one ``task e2e ...``
entry with its end-to-end time.

Every scenario that follows tasks goes through ``TaskJourney.run``; what differs between them
is how the task is followed (``TaskJourney.follow`` or ``follow_long_poll``) and the verdict on
the final answer (a ``Judge``). A task not created, not final by its deadline, or cut short by
the end of the run is always reported, never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import gevent

from .contract import (
    CANCEL,
    CREATE,
    KNOWN_FAULT_ANSWERS,
    LONG_POLL,
    REPLAY,
    STATUS,
    TASK_CANCEL_TOO_LATE,
    TASK_CANCELLED,
    TASK_E2E,
    TASK_INJECTED,
    TASK_INTERRUPTED,
    create_path,
    is_cancelled,
    is_still_running,
    json_object,
    long_poll_path,
    provisioning_body,
    status_in_contract,
    status_path,
)
from .entries import report_entry
from .options import RunConfig
from .stub_schedule import BehaviourTimeline


class TaskFailed(Exception):
    """A task that ended otherwise than the scenario expected, or not in time."""


@dataclass(frozen=True)
class FinalAnswer:
    """The status read that ended a task's polling, and when the task ran (wall clock)."""

    status: int
    answer: dict[str, Any]
    created_at: float
    ended_at: float


class Verdict(NamedTuple):
    entry: str  # the Locust entry the task is reported under
    error: Exception | None  # None: a success


Judge = Callable[[FinalAnswer], Verdict]
# How a task is followed: (equipment id, task id, created (monotonic), deadline seconds) ->
# the final status and answer, or None when the deadline passed first.
Follow = Callable[[str, str, float, float], "tuple[int, dict[str, Any]] | None"]


def provisioning_judge(timeline: BehaviourTimeline, entry: str = TASK_E2E) -> Judge:
    """A valid id's task must complete (reported under ``entry``); a 500 while the stub
    injected failures is expected."""

    def judge(final: FinalAnswer) -> Verdict:
        if final.status == 200 and final.answer.get("code") == 200:
            return Verdict(entry, None)
        if final.status == 500 and timeline.failures_injected_around(final.created_at, final.ended_at):
            return Verdict(TASK_INJECTED, None)
        return Verdict(entry, TaskFailed(f"ended {final.status} {final.answer.get('message')}"))

    return judge


def known_fault_judge(entry: str) -> Judge:
    """A task for an id the stub fails on purpose must end with that fault's answer."""
    expected_status, expected_message = KNOWN_FAULT_ANSWERS[entry]

    def judge(final: FinalAnswer) -> Verdict:
        if final.status == expected_status and final.answer.get("message") == expected_message:
            return Verdict(entry, None)
        return Verdict(entry, TaskFailed(f"expected {expected_status}, ended {final.status} {final.answer}"))

    return judge


def cancel_judge(final: FinalAnswer) -> Verdict:
    """A task cancelled at a random moment ends ``cancelled`` when the cancel came before the
    call, and with the call's outcome when the call was already in flight (too late)."""
    if is_cancelled(final.status, final.answer):
        return Verdict(TASK_CANCELLED, None)
    if final.status == 200 and final.answer.get("code") == 200:
        return Verdict(TASK_CANCEL_TOO_LATE, None)
    return Verdict(TASK_CANCELLED, TaskFailed(f"ended {final.status} {final.answer}"))


class TaskJourney:
    """Service B's create and status calls over a user's Locust client, and whole tasks."""

    def __init__(self, client: Any, events: Any, config: RunConfig, timeline: BehaviourTimeline) -> None:
        self.client = client
        self.events = events
        self.config = config
        self.timeline = timeline

    def create(self, equipment_id: str, body: Any = None, headers: dict[str, str] | None = None
               ) -> str | None:
        """POST a task; the task id, or None when the API did not take it (a failed request)."""
        payload = provisioning_body() if body is None else body
        with self.client.post(create_path(equipment_id), json=payload, name=CREATE, headers=headers,
                              catch_response=True) as response:
            answer = json_object(response.content)
            task_id = answer.get("taskId")
            if response.status_code == 200 and answer.get("code") == 200 and isinstance(task_id, str):
                response.success()
                return task_id
            response.failure(f"create answered {response.status_code} {answer or response.text!r}")
            return None

    def replay(self, equipment_id: str, body: Any, key: str, task_id: str) -> None:
        """POST the same body with the same ``Idempotency-Key`` again, as a client whose first
        answer was lost would: a success only when it names the same task."""
        with self.client.post(create_path(equipment_id), json=body, name=REPLAY,
                              headers={"Idempotency-Key": key}, catch_response=True) as response:
            answer = json_object(response.content)
            if response.status_code == 200 and answer.get("taskId") == task_id:
                response.success()
            else:
                response.failure(f"replay answered {response.status_code} {answer!r}, not task {task_id}")

    def cancel(self, equipment_id: str, task_id: str) -> None:
        """DELETE a task: 202 (accepted) or 200 (already final) are the contract's answers."""
        with self.client.delete(status_path(equipment_id, task_id), name=CANCEL,
                                catch_response=True) as response:
            if response.status_code in (200, 202):
                response.success()
            else:
                response.failure(f"cancel answered {response.status_code} {response.text!r}")

    def poll(self, equipment_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
        """One status read, a success when it got an answer of the contract."""
        path = status_path(equipment_id, task_id)
        with self.client.get(path, name=STATUS, catch_response=True) as response:
            answer = json_object(response.content)
            status = response.status_code
            if status_in_contract(status, answer):
                response.success()
            else:
                response.failure(f"status answered {status} {answer or response.text!r}")
            return status, answer

    def first_poll_seconds(self) -> float:
        """``--first-poll``, else the stub's delay as last heard, else the expected duration."""
        if self.config.first_poll is not None:
            return self.config.first_poll
        known = self.timeline.delay_seconds
        return known if known is not None else self.config.expected_seconds

    def follow(self, equipment_id: str, task_id: str, created: float, deadline: float
               ) -> tuple[int, dict[str, Any]] | None:
        """Poll like a sensible client until the task is final; None when the deadline
        (seconds after ``created``, monotonic) passed first."""
        gevent.sleep(max(created + self.first_poll_seconds() - time.monotonic(), 0))
        while True:
            status, answer = self.poll(equipment_id, task_id)
            if status != 0 and not is_still_running(status, answer):
                return status, answer
            left = created + deadline - time.monotonic()
            if left <= 0:
                return None
            gevent.sleep(min(self.config.poll_interval, left))

    def long_poll(self, equipment_id: str, task_id: str, wait: float) -> tuple[int, dict[str, Any]]:
        """One ``?wait=`` status read: it answers when the task is final, or after ``wait``
        seconds with "still running"; a success when the answer is one of the contract's."""
        with self.client.get(long_poll_path(equipment_id, task_id, wait), name=LONG_POLL,
                             catch_response=True) as response:
            answer = json_object(response.content)
            status = response.status_code
            if status_in_contract(status, answer):
                response.success()
            else:
                response.failure(f"long-poll answered {status} {answer or response.text!r}")
            return status, answer

    def follow_long_poll(self, equipment_id: str, task_id: str, created: float, deadline: float
                         ) -> tuple[int, dict[str, Any]] | None:
        """Long-poll from the start, again at once after each "still running" (after a pause
        when the answer was not the contract's, e.g. a 503), until final or the deadline."""
        while (left := created + deadline - time.monotonic()) > 0:
            status, answer = self.long_poll(equipment_id, task_id, min(self.config.long_poll_wait, left))
            if status_in_contract(status, answer) and not is_still_running(status, answer):
                return status, answer
            if not status_in_contract(status, answer):
                gevent.sleep(min(1.0, max(created + deadline - time.monotonic(), 0)))
        return None

    def report(self, entry: str, started: float, error: Exception | None) -> None:
        report_entry(self.events, "TASK", entry, started, error=error)

    def report_interrupted(self, started: float, stop: BaseException) -> None:
        """A task cut short by the end of the run: reported as such, never dropped."""
        self.report(TASK_INTERRUPTED, started, TaskFailed(f"stopped while running ({type(stop).__name__})"))

    def run(self, entry: str, equipment_id: str, deadline: float, judge: Judge, *,
            created: Callable[[str, str], None] | None = None, body: Any = None,
            headers: dict[str, str] | None = None, follow: Follow | None = None) -> None:
        """One whole task under ``entry``: created with ``body`` and ``headers`` (then
        ``created(equipment_id, task_id)``), followed (by ``follow``, polling unless told) until
        final or ``deadline`` seconds, judged, reported."""
        started = time.monotonic()
        created_at = time.time()
        task_id = self.create(equipment_id, body, headers)
        if task_id is None:
            self.report(entry, started, TaskFailed("not created"))
            return
        if created is not None:
            created(equipment_id, task_id)
        try:
            final = (follow or self.follow)(equipment_id, task_id, started, deadline)
        except BaseException as stop:  # GreenletExit when Locust stops this user mid-task
            self.report_interrupted(started, stop)
            raise
        if final is None:
            self.report(entry, started, TaskFailed(f"not final after {deadline:.0f}s"))
            return
        verdict = judge(FinalAnswer(*final, created_at=created_at, ended_at=time.time()))
        self.report(verdict.entry, started, verdict.error)
