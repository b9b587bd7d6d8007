"""Faults at run time: ``--stub-schedule`` changes the stub's behaviour through its admin
endpoint (``GET``/``PUT /admin/behaviour``) at given seconds into the run, and puts it back
when the test stops.

The master (or the local runner) applies the schedule and tells every worker what the stub
does now (the ``stub_behaviour`` message); each process keeps a ``BehaviourTimeline``, so that
a provisioning task that ended in 500 while failures were injected counts as expected.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import ssl
import threading
import time
import urllib.request
from typing import Any

import gevent
from locust.env import Environment

from .entries import report_entry

log = logging.getLogger("cpe-load")

Schedule = list[tuple[float, dict[str, float]]]
MESSAGE = "stub_behaviour"
ADMIN_TIMEOUT_SECONDS = 10
RESTORED_KEYS = ("delaySeconds", "jitterSeconds", "failureRatio")
BEHAVIOUR_KEYS = {
    "delay": "delaySeconds", "delayseconds": "delaySeconds",
    "jitter": "jitterSeconds", "jitterseconds": "jitterSeconds",
    "failure": "failureRatio", "failureratio": "failureRatio", "ratio": "failureRatio",
}
# The stub's processes follow a change within about a second: a failure shortly after
# failures were switched off is still an injected one.
FOLLOW_GRACE_SECONDS = 2.0


def parse_schedule(text: str) -> Schedule:
    """``"0 failureRatio=0; 30 failure=0.2 delay=2"`` -> [(0.0, {...}), (30.0, {...})], sorted."""
    schedule: Schedule = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        at, *settings = entry.split()
        if not _finite(at.rstrip("s")):
            raise ValueError(f"--stub-schedule: cannot read the time {at!r} in {entry!r}")
        changes: dict[str, float] = {}
        for setting in settings:
            key, _, value = setting.partition("=")
            if key.lower() not in BEHAVIOUR_KEYS or not _finite(value):
                raise ValueError(f"--stub-schedule: cannot read {setting!r} in {entry!r}")
            changes[BEHAVIOUR_KEYS[key.lower()]] = float(value)
        schedule.append((float(at.rstrip("s")), changes))
    return sorted(schedule, key=lambda item: item[0])


def _finite(value: str) -> bool:
    """A finite number (``nan`` and ``inf`` are not JSON, nor a time); the stub itself says
    when a value is out of its bounds."""
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


class BehaviourTimeline:
    """The stub's behaviour over time, as this process learnt it: when could a task have
    been failed on purpose? Updated from the schedule (on the master, and sent to workers)."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._ratios: list[float] = []
        self.delay_seconds: float | None = None
        self._lock = threading.Lock()

    def record(self, at: float, behaviour: dict[str, Any]) -> None:
        with self._lock:
            ratio = float(behaviour.get("failureRatio", self._ratios[-1] if self._ratios else 0.0))
            index = bisect.bisect(self._times, at)
            self._times.insert(index, at)
            self._ratios.insert(index, ratio)
            if "delaySeconds" in behaviour:
                self.delay_seconds = float(behaviour["delaySeconds"])

    def failures_injected_between(self, start: float, end: float) -> bool:
        with self._lock:
            if not self._times:
                return False
            first = max(bisect.bisect(self._times, start) - 1, 0)
            last = bisect.bisect(self._times, end)
            return any(ratio > 0 for ratio in self._ratios[first:max(last, first + 1)])

    def failures_injected_around(self, start: float, end: float) -> bool:
        """Failures injected while a task ran, or just before the stub followed a change."""
        return self.failures_injected_between(start - FOLLOW_GRACE_SECONDS, end)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()
            self._ratios.clear()
            self.delay_seconds = None


def verified_context(ca_file: str) -> ssl.SSLContext:
    """A client context that trusts only the project's CA (the stdlib's, for urllib)."""
    return ssl.create_default_context(cafile=ca_file)


class StubAdmin:
    """The stub's admin endpoint; every call is reported as a Locust entry of its own."""

    def __init__(self, environment: Environment, stub_url: str, ca_file: str) -> None:
        self.environment = environment
        self.url = f"{stub_url}/admin/behaviour"
        self.ca_file = ca_file

    def behaviour(self, changes: dict[str, float] | None = None) -> dict[str, Any]:
        """GET (or PUT ``changes``) the stub's behaviour: what it does now."""
        method = "GET" if changes is None else "PUT"
        data = None if changes is None else json.dumps(changes, allow_nan=False).encode()
        request = urllib.request.Request(self.url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        started = time.monotonic()
        error: Exception | None = None
        body: dict[str, Any] = {}
        context = verified_context(self.ca_file)
        try:
            with urllib.request.urlopen(request, context=context, timeout=ADMIN_TIMEOUT_SECONDS) as response:
                body = json.loads(response.read())
        except (OSError, ValueError) as failure:  # URLError and HTTPError are OSErrors
            error = failure
        report_entry(self.environment.events, "ADMIN", f"{method} stub /admin/behaviour", started,
                     error=error, length=len(str(body)))
        if error is not None:
            raise error
        return body


class StubSchedule:
    """Applies the schedule on the master (or the local runner), tells every worker, and puts
    the stub back as it found it when the test stops."""

    def __init__(self, environment: Environment, admin: StubAdmin, schedule: Schedule) -> None:
        self.environment = environment
        self.admin = admin
        self.schedule = schedule
        self.original: dict[str, Any] | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        try:
            self.original = self.admin.behaviour()
        except (OSError, ValueError) as error:
            if self.schedule:
                log.error("cannot read the stub's behaviour at %s: %s", self.admin.url, error)
            self.original = None
        if self.original is not None:
            self._tell(self.original)
        if self.schedule:
            self.greenlet = gevent.spawn(self._run, time.monotonic())

    def _tell(self, behaviour: dict[str, Any]) -> None:
        runner = self.environment.runner
        if runner is not None:
            runner.send_message(MESSAGE, {"at": time.time(), "behaviour": behaviour})

    def _run(self, started: float) -> None:
        for at, changes in self.schedule:
            gevent.sleep(max(started + at - time.monotonic(), 0))
            try:
                current = self.admin.behaviour(changes)
            except (OSError, ValueError) as error:
                log.error("stub behaviour change %s failed: %s", changes, error)
                continue
            log.info("stub behaviour now %s", current)
            self._tell(current)

    def stop(self) -> None:
        if self.greenlet is None:
            return
        self.greenlet.kill(block=False)
        self.greenlet = None
        if self.original is not None:
            restore = {key: self.original[key] for key in RESTORED_KEYS if key in self.original}
            try:
                self._tell(self.admin.behaviour(restore))
            except (OSError, ValueError) as error:
                log.error("could not put the stub's behaviour back to %s: %s", restore, error)
