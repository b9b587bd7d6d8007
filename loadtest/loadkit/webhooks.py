"""Completion webhooks in Locust: one receiver per Locust process, and a task's journey that
ends when its signed webhook arrives instead of by polling.

The receiver is the development kit's (``cpe_devkit.webhook_receiver``: HTTPS with the
project's server certificate, each delivery verified with the Standard Webhooks reference
library). It is thread-based, which Locust's gevent monkey-patching turns into greenlets, so
it serves inside the Locust process. The devkit is imported only when the webhook scenario is
on, so the other scenarios run where only ``loadtest/`` is present (the compose image).

Every call the receiver gets is reported as a ``webhook delivery`` entry whose time is the
completion-notice latency (received minus the task's ``finishedAt``); a signature that does not
verify is a failure there, and the task it was for is not told (it fails at its deadline).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult

from .contract import CANCELLED, CANCELLED_CODE, INTERNAL_ERROR, WEBHOOK_DELIVERY, provisioning_body
from .entries import report_entry
from .journey import FinalAnswer, Judge, TaskFailed, TaskJourney
from .options import RunConfig

WATCH_INTERVAL_SECONDS = 0.05
EARLY_KEPT = 10_000  # verified webhooks nobody waited for (yet): duplicates, or very fast tasks

# The classic answer each final status of a webhook's task detail stands for, so that the
# scenarios' judges read a webhook as they read a final poll.
CLASSIC_ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "completed": (200, {"code": 200, "message": "Completed"}),
    "failed": (500, {"code": 500, "message": INTERNAL_ERROR}),
    "cancelled": (200, {"code": CANCELLED_CODE, "message": CANCELLED}),
}


class WebhookRejected(Exception):
    """A delivery whose signature does not verify with the platform's secret."""


def finished_at(detail: Any) -> float | None:
    """The task detail's ``finishedAt`` as epoch seconds, None when absent or malformed."""
    text = detail.get("finishedAt") if isinstance(detail, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def classic_answer(detail: Any) -> tuple[int, dict[str, Any]]:
    """The classic final answer a webhook's task detail stands for."""
    status = detail.get("status") if isinstance(detail, dict) else None
    return CLASSIC_ANSWERS.get(str(status), (0, {"message": f"webhook with status {status!r}"}))


class WebhookNotices:
    """This process's receiver, and the tasks waiting for their webhook."""

    def __init__(self, events: Any, config: RunConfig) -> None:
        self.events = events
        self.config = config
        self._receiver: Any = None
        self._watcher: gevent.Greenlet[Any, Any] | None = None
        self._seen = 0
        self._waiting: dict[str, AsyncResult[Any]] = {}
        self._early: OrderedDict[str, Any] = OrderedDict()

    def start(self) -> None:
        from cpe_devkit.webhook_receiver import WebhookReceiver  # only when the scenario is on

        if not self.config.webhook_secret:
            raise ValueError("the webhook scenario needs --webhook-secret (the platform's WEBHOOK_SECRET)")
        self._receiver = WebhookReceiver(Path(self.config.cert_dir), self.config.webhook_secret,
                                         host=self.config.webhook_host, port=self.config.webhook_port or None)
        self._receiver.start()
        self._watcher = gevent.spawn(self._watch)

    def stop(self) -> None:
        """Stop the watcher and the receiver; safe to call twice."""
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher = None
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None

    @property
    def url(self) -> str:
        return str(self._receiver.url)

    def wait(self, task_id: str, timeout: float) -> Any | None:
        """The verified webhook of ``task_id`` (the receiver's record), or None after
        ``timeout`` seconds."""
        if (call := self._early.pop(task_id, None)) is not None:
            return call
        waiter: AsyncResult[Any] = AsyncResult()
        self._waiting[task_id] = waiter
        try:
            return waiter.get(timeout=max(timeout, 0.0))
        except gevent.Timeout:
            return None
        finally:
            self._waiting.pop(task_id, None)

    def _watch(self) -> None:
        # The receiver records every call in one list (it offers no callback): take the new ones.
        while True:
            received = self._receiver.received
            for call in received[self._seen:]:
                self._dispatch(call)
            self._seen = len(received)
            gevent.sleep(WATCH_INTERVAL_SECONDS)

    def _dispatch(self, call: Any) -> None:
        done = finished_at(call.data)
        latency = 0.0 if done is None else max(call.received_wall - done, 0.0)
        error = None if call.verified else WebhookRejected(f"signature does not verify ({call.webhook_id})")
        report_entry(self.events, "WEBHOOK", WEBHOOK_DELIVERY, call.received_monotonic - latency,
                     error=error, length=len(call.body), ended=call.received_monotonic)
        if not call.verified or not isinstance(call.data, dict):
            return
        task_id = str(call.data.get("taskId"))
        if (waiter := self._waiting.pop(task_id, None)) is not None:
            waiter.set(call)
            return
        self._early[task_id] = call
        while len(self._early) > EARLY_KEPT:
            self._early.popitem(last=False)


class WebhookJourney:
    """One task whose end its webhook tells: create with ``callbackUrl``, wait for the
    verified delivery, judge it as the final poll it stands for, report the whole task with
    the time from the create to the delivery's arrival."""

    def __init__(self, journey: TaskJourney, notices: WebhookNotices) -> None:
        self.journey = journey
        self.notices = notices

    def run(self, entry: str, equipment_id: str, deadline: float, judge: Judge) -> None:
        started = time.monotonic()
        created_at = time.time()
        task_id = self.journey.create(equipment_id, provisioning_body(callback_url=self.notices.url))
        if task_id is None:
            self.journey.report(entry, started, TaskFailed("not created"))
            return
        try:
            call = self.notices.wait(task_id, started + deadline - time.monotonic())
        except BaseException as stop:  # GreenletExit when Locust stops this user mid-task
            self.journey.report_interrupted(started, stop)
            raise
        if call is None:
            self.journey.report(entry, started, TaskFailed(f"no verified webhook after {deadline:.0f}s"))
            return
        verdict = judge(FinalAnswer(*classic_answer(call.data), created_at=created_at,
                                    ended_at=call.received_wall))
        report_entry(self.journey.events, "TASK", verdict.entry, started, error=verdict.error,
                     ended=call.received_monotonic)
