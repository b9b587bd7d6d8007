"""Locust scenarios for Service B, the asynchronous CPE provisioning API.

Run from the repository root (``task load`` and ``task load-ui`` do this)::

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 5m --host https://127.0.0.1:8081
    locust -f loadtest/locustfile.py --headless --shape ramp --ramp-tasks 2000 --ramp-seconds 60
    locust -f loadtest/locustfile.py --class-picker      # web UI on :8089

Scenarios (weighted users; weights from ``--weight-*`` or ``LOAD_WEIGHT_*``):

    ProvisioningUser   creates a task for a fresh valid equipment id, polls it the way a sensible
                       client does (first poll near the expected duration, then every interval)
                       and reports the whole task as one ``task e2e`` entry with its end-to-end
                       time. A task not final by the deadline is a failure, never dropped.
    StatusReaderUser   reads the status of tasks this process created (the polling load alone)
    InvalidRequestUser bad ids, bad and oversized bodies, unknown tasks: the contract's 4xx
    KnownFaultUser     equipment ids the stub always fails (``STUB_FAIL_IDS``) or does not know
                       (``STUB_UNKNOWN_IDS``): 500 and 404 are the expected, successful answers

Faults at run time: ``--stub-schedule "30 failureRatio=0.2; 90 failureRatio=0"`` changes the
stub's behaviour through its admin endpoint (``PUT /admin/behaviour``) at those seconds into the
run, and puts it back at the end. While a failure ratio is on, a provisioning task that ends in
500 is an expected outcome, reported as ``task e2e injected failure`` instead of a failure.

Every client verifies Service B's certificate against the project's CA (``--ca-file``).
Shapes (``--shape ramp|rate|burst``) are in ``load_shapes.py``.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.ssl
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from load_shapes import SHAPES, ScenarioShape

__all__ = ["InvalidRequestUser", "KnownFaultUser", "ProvisioningUser", "ScenarioShape", "StatusReaderUser"]

log = logging.getLogger("cpe-load")

CREATE = "POST /api/v1/equipment/cpe/[id]"
STATUS = "GET /api/v1/equipment/cpe/[id]/task/[task]"
TASK_E2E = "task e2e"
TASK_INJECTED = "task e2e injected failure"
TASK_INTERRUPTED = "task e2e interrupted"
TASK_FAIL_ID = "task e2e fail-id"
TASK_UNKNOWN_ID = "task e2e unknown-id"

COMPLETED = "Completed"
STILL_RUNNING = "Task is still running"
INTERNAL_ERROR = "Internal provisioning exception"
EQUIPMENT_NOT_FOUND = "The requested equipment is not found"
TASK_NOT_FOUND = "The requested task is not found"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


# --- configuration ---------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("CPE provisioning", "scenarios of loadtest/locustfile.py")
    default_ca = os.environ.get("TLS_CA_FILE") or os.path.join(_env("CERT_DIR", "certs"), "ca.pem")
    group.add_argument("--ca-file", env_var="LOAD_CA_FILE", default=default_ca,
                       help="CA certificate that signed Service B's and the stub's certificates")
    tokens = _words(os.environ.get("API_TOKENS", ""))
    group.add_argument("--api-token", env_var="LOAD_API_TOKEN",
                       default=os.environ.get("API_TOKEN") or (tokens[0] if tokens else ""),
                       help="bearer token for Service B when it has API_TOKENS set "
                            "(default: API_TOKEN, or the first of API_TOKENS)")
    group.add_argument("--expected-seconds", env_var="LOAD_EXPECTED_SECONDS", type=float,
                       default=float(_env("STUB_DELAY_SECONDS", "60")),
                       help="how long a task is expected to take (default: STUB_DELAY_SECONDS or 60)")
    group.add_argument("--first-poll", env_var="LOAD_FIRST_POLL", type=float, default=-1.0,
                       help="seconds from creating a task to its first poll (default: expected)")
    group.add_argument("--poll-interval", env_var="LOAD_POLL_INTERVAL", type=float, default=-1.0,
                       help="seconds between polls after the first (default: expected/10 in 0.2..5)")
    group.add_argument("--task-deadline", env_var="LOAD_TASK_DEADLINE", type=float, default=-1.0,
                       help="a task not final this long after its creation fails (default: 2x expected + 30)")
    group.add_argument("--pacing", env_var="LOAD_PACING", type=float, default=-1.0,
                       help="a provisioning user starts one task every this many seconds "
                            "(default: 0, back to back; for --shape rate: 1.5x expected + 10)")
    group.add_argument("--weight-provision", env_var="LOAD_WEIGHT_PROVISION", type=int, default=10)
    group.add_argument("--weight-status", env_var="LOAD_WEIGHT_STATUS", type=int, default=3)
    group.add_argument("--weight-invalid", env_var="LOAD_WEIGHT_INVALID", type=int, default=1)
    group.add_argument("--weight-faults", env_var="LOAD_WEIGHT_FAULTS", type=int, default=1,
                       help="KnownFaultUser weight; 0 when neither --fail-ids nor --unknown-ids is set")
    group.add_argument("--fail-ids", env_var="LOAD_FAIL_IDS", default=_env("STUB_FAIL_IDS", ""),
                       help="comma-separated ids the stub always fails (default: STUB_FAIL_IDS)")
    group.add_argument("--unknown-ids", env_var="LOAD_UNKNOWN_IDS", default=_env("STUB_UNKNOWN_IDS", ""),
                       help="comma-separated ids the stub does not know (default: STUB_UNKNOWN_IDS)")
    group.add_argument("--service-a-attempts", env_var="LOAD_SERVICE_A_ATTEMPTS", type=int,
                       default=int(_env("SERVICE_A_ATTEMPTS", "3")),
                       help="calls the worker makes before a task fails (sets the fail-id deadline)")
    group.add_argument("--max-body-bytes", env_var="LOAD_MAX_BODY_BYTES", type=int,
                       default=int(_env("API_MAX_BODY_BYTES", "65536")),
                       help="Service B's body limit, to send a body just past it")
    group.add_argument("--stub-url", env_var="LOAD_STUB_URL", default=_env("SERVICE_A_URL", "https://127.0.0.1:8080"),
                       help="the Service A stub, for its admin endpoint")
    group.add_argument("--stub-schedule", env_var="LOAD_STUB_SCHEDULE", default="",
                       help="stub behaviour changes during the run: 'SECONDS key=value ...; ...' with keys "
                            "delaySeconds, jitterSeconds, failureRatio (or delay, jitter, failure)")
    shapes = parser.add_argument_group("CPE load shapes", "see loadtest/load_shapes.py")
    shapes.add_argument("--shape", env_var="LOAD_SHAPE", choices=SHAPES, default="constant")
    shapes.add_argument("--ramp-tasks", env_var="LOAD_RAMP_TASKS", type=int, default=100,
                        help="ramp: tasks in flight at the top")
    shapes.add_argument("--ramp-seconds", env_var="LOAD_RAMP_SECONDS", type=float, default=60.0)
    shapes.add_argument("--hold-seconds", env_var="LOAD_HOLD_SECONDS", type=float, default=120.0)
    shapes.add_argument("--rate", env_var="LOAD_RATE", type=float, default=10.0,
                        help="rate: tasks started per second")
    shapes.add_argument("--rate-seconds", env_var="LOAD_RATE_SECONDS", type=float, default=300.0)
    shapes.add_argument("--burst-tasks", env_var="LOAD_BURST_TASKS", type=int, default=500,
                        help="burst: tasks added on top of -u at once")
    shapes.add_argument("--burst-at", env_var="LOAD_BURST_AT", type=float, default=30.0)
    shapes.add_argument("--burst-hold", env_var="LOAD_BURST_HOLD", type=float, default=60.0)
    shapes.add_argument("--burst-cooldown", env_var="LOAD_BURST_COOLDOWN", type=float, default=60.0)


@dataclass
class RunConfig:
    """The options the users read, resolved once per process in the ``init`` hook."""

    ca_file: str = "certs/ca.pem"
    api_token: str = ""
    expected_seconds: float = 60.0
    first_poll: float | None = None  # None: when the stub's delay says the task should be done
    poll_interval: float = 5.0
    deadline: float = 150.0
    pacing: float = 0.0
    fail_ids: tuple[str, ...] = ()
    unknown_ids: tuple[str, ...] = ()
    fail_deadline: float = 400.0
    max_body_bytes: int = 65536
    stub_url: str = "https://127.0.0.1:8080"
    schedule: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    @classmethod
    def from_options(cls, options: Any) -> RunConfig:
        expected = max(options.expected_seconds, 0.0)
        first_poll = options.first_poll if options.first_poll >= 0 else None
        interval = options.poll_interval if options.poll_interval > 0 else min(max(expected / 10, 0.2), 5.0)
        deadline = options.task_deadline if options.task_deadline > 0 else 2 * expected + 30
        if options.pacing >= 0:
            pacing = options.pacing
        else:
            pacing = 1.5 * expected + 10 if options.shape == "rate" else 0.0
        attempts = max(options.service_a_attempts, 1)
        return cls(
            ca_file=options.ca_file,
            api_token=options.api_token,
            expected_seconds=expected,
            first_poll=first_poll,
            poll_interval=interval,
            deadline=deadline,
            pacing=pacing,
            fail_ids=_words(options.fail_ids),
            unknown_ids=_words(options.unknown_ids),
            # Each attempt waits the stub's delay; the backoffs between them add up to ~1 minute.
            fail_deadline=attempts * (expected + 5) + 60 + deadline,
            max_body_bytes=options.max_body_bytes,
            stub_url=options.stub_url.rstrip("/"),
            schedule=parse_schedule(options.stub_schedule),
        )


BEHAVIOUR_KEYS = {
    "delay": "delaySeconds", "delayseconds": "delaySeconds",
    "jitter": "jitterSeconds", "jitterseconds": "jitterSeconds",
    "failure": "failureRatio", "failureratio": "failureRatio", "ratio": "failureRatio",
}


def parse_schedule(text: str) -> list[tuple[float, dict[str, float]]]:
    """``"0 failureRatio=0; 30 failure=0.2 delay=2"`` -> [(0.0, {...}), (30.0, {...})], sorted."""
    schedule: list[tuple[float, dict[str, float]]] = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        at, *settings = entry.split()
        changes: dict[str, float] = {}
        for setting in settings:
            key, _, value = setting.partition("=")
            if key.lower() not in BEHAVIOUR_KEYS or not value:
                raise ValueError(f"--stub-schedule: cannot read {setting!r} in {entry!r}")
            changes[BEHAVIOUR_KEYS[key.lower()]] = float(value)
        schedule.append((float(at.rstrip("s")), changes))
    return sorted(schedule, key=lambda item: item[0])


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split(",") if word.strip())


config = RunConfig()


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

    def reset(self) -> None:
        with self._lock:
            self._times.clear()
            self._ratios.clear()
            self.delay_seconds = None


timeline = BehaviourTimeline()
# The stub's processes follow a change within about a second: a failure shortly after
# failures were switched off is still an injected one.
FOLLOW_GRACE_SECONDS = 2.0
# Tasks this process created, for the status readers: (equipment id, task id).
known_tasks: deque[tuple[str, str]] = deque(maxlen=10_000)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    global config
    options = environment.parsed_options
    if options is None:  # used as a library, e.g. by a test building its own Environment
        return
    config = RunConfig.from_options(options)
    options.pacing = config.pacing  # the rate shape reads it
    weights = {
        ProvisioningUser: options.weight_provision,
        StatusReaderUser: options.weight_status,
        InvalidRequestUser: options.weight_invalid,
        KnownFaultUser: options.weight_faults if (config.fail_ids or config.unknown_ids) else 0,
    }
    for user_class, weight in weights.items():
        user_class.weight = weight
    if config.api_token:
        CpeUser.default_headers = {"Authorization": f"Bearer {config.api_token}"}
    # Locust's dispatcher needs every listed class to have a positive weight.
    environment.user_classes[:] = [cls for cls in environment.user_classes if weights.get(cls, 1) > 0]
    if not isinstance(environment.runner, MasterRunner) and environment.runner is not None:
        environment.runner.register_message("stub_behaviour", on_behaviour_message)


def on_behaviour_message(environment: Environment, msg: Any, **_: Any) -> None:
    timeline.record(msg.data["at"], msg.data["behaviour"])


# --- the stub's admin endpoint and the schedule of faults ----------------------------------------


def _stdlib_tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=config.ca_file)


def stub_behaviour(environment: Environment, changes: dict[str, float] | None = None) -> dict[str, Any]:
    """GET (or PUT ``changes``) the stub's behaviour; reported as a Locust entry."""
    method = "GET" if changes is None else "PUT"
    data = None if changes is None else json.dumps(changes).encode()
    request = urllib.request.Request(
        f"{config.stub_url}/admin/behaviour", data=data, method=method,
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    error: Exception | None = None
    body: dict[str, Any] = {}
    try:
        with urllib.request.urlopen(request, context=_stdlib_tls(), timeout=10) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as failure:  # URLError and HTTPError are OSErrors
        error = failure
    environment.events.request.fire(
        request_type="ADMIN", name=f"{method} stub /admin/behaviour",
        response_time=(time.perf_counter() - started) * 1000, response_length=len(str(body)),
        exception=error, context={},
    )
    if error is not None:
        raise error
    return body


class StubSchedule:
    """Applies ``--stub-schedule`` on the master (or the local runner), tells every worker,
    and puts the stub back as it found it when the test stops."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.original: dict[str, Any] | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        try:
            self.original = stub_behaviour(self.environment)
        except (OSError, ValueError) as error:
            if config.schedule:
                log.error("cannot read the stub's behaviour at %s: %s", config.stub_url, error)
            self.original = None
        if self.original is not None:
            self._tell(self.original)
        if config.schedule:
            self.greenlet = gevent.spawn(self._run, time.monotonic())

    def _tell(self, behaviour: dict[str, Any]) -> None:
        runner = self.environment.runner
        if runner is not None:
            runner.send_message("stub_behaviour", {"at": time.time(), "behaviour": behaviour})

    def _run(self, started: float) -> None:
        for at, changes in config.schedule:
            gevent.sleep(max(started + at - time.monotonic(), 0))
            try:
                current = stub_behaviour(self.environment, changes)
            except (OSError, ValueError) as error:
                log.error("stub behaviour change %s failed: %s", changes, error)
                continue
            log.info("stub behaviour now %s", current)
            self._tell(current)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
            if self.original is not None:
                keys = ("delaySeconds", "jitterSeconds", "failureRatio")
                restore = {key: self.original[key] for key in keys if key in self.original}
                try:
                    self._tell(stub_behaviour(self.environment, restore))
                except (OSError, ValueError) as error:
                    log.error("could not put the stub's behaviour back to %s: %s", restore, error)


_schedule: StubSchedule | None = None


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    global _schedule
    timeline.reset()
    known_tasks.clear()
    if isinstance(environment.runner, WorkerRunner):
        return
    host = (environment.host or ProvisioningUser.host).rstrip("/")
    try:
        with urllib.request.urlopen(f"{host}/health", context=_stdlib_tls(), timeout=5):
            pass
    except (OSError, ValueError) as error:
        log.error("Service B does not answer at %s/health (%s); is the platform up (task dev)?", host, error)
        environment.process_exit_code = 2
        if environment.runner is not None:
            gevent.spawn_later(0.1, environment.runner.quit)
        return
    _schedule = StubSchedule(environment)
    _schedule.start()


@events.test_stopping.add_listener
def on_test_stopping(environment: Environment, **_: Any) -> None:
    global _schedule
    if _schedule is not None:
        _schedule.stop()
        _schedule = None


# --- users --------------------------------------------------------------------------------------


def provisioning_body(password: str = "load-test-secret") -> dict[str, Any]:
    return {
        "timeoutInSeconds": 14,
        "parameters": {"username": "admin", "password": password, "vlan": 534, "interfaces": [1, 2, 3, 4]},
    }


def fresh_equipment_id() -> str:
    return f"CPE{uuid.uuid4().hex[:12].upper()}"


def _tls_context(cafile: str | None = None, **_: Any) -> gevent.ssl.SSLContext:
    """Locust's HTTPS client verifies Service B against the project's CA, never insecurely."""
    return gevent.ssl.create_default_context(cafile=config.ca_file)


class TaskFailed(Exception):
    """A task that ended otherwise than the scenario expected, or not in time."""


def interrupted(stop: BaseException) -> TaskFailed:
    return TaskFailed(f"stopped while running ({type(stop).__name__})")


class CpeUser(FastHttpUser):
    abstract = True
    host = _env("LOAD_HOST", "https://127.0.0.1:8081")
    insecure = False
    ssl_context_factory = staticmethod(_tls_context)
    connection_timeout = 10.0
    network_timeout = 30.0

    def _json(self, response: Any) -> dict[str, Any]:
        try:
            body = json.loads(response.content or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def create(self, equipment_id: str, body: Any = None) -> str | None:
        """POST a task; the task id, or None when the API did not take it (a failed request)."""
        payload = provisioning_body() if body is None else body
        with self.client.post(f"/api/v1/equipment/cpe/{equipment_id}", json=payload, name=CREATE,
                              catch_response=True) as response:
            answer = self._json(response)
            task_id = answer.get("taskId")
            if response.status_code == 200 and answer.get("code") == 200 and isinstance(task_id, str):
                response.success()
                return task_id
            response.failure(f"create answered {response.status_code} {answer or response.text!r}")
            return None

    def poll(self, equipment_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
        """One status read; its request entry is judged by the caller through the result."""
        with self.client.get(f"/api/v1/equipment/cpe/{equipment_id}/task/{task_id}", name=STATUS,
                             catch_response=True) as response:
            answer = self._json(response)
            status = response.status_code
            contract = (
                (status == 200 and answer.get("code") in (200, 204))
                or (status == 500 and answer.get("message") == INTERNAL_ERROR)
                or (status == 404 and answer.get("message") in (EQUIPMENT_NOT_FOUND, TASK_NOT_FOUND))
            )
            if contract:
                response.success()
            else:
                response.failure(f"status answered {status} {answer or response.text!r}")
            return status, answer

    def follow(
        self, equipment_id: str, task_id: str, created: float, deadline: float
    ) -> tuple[int, dict[str, Any]]:
        """Poll like a sensible client until the task is final or the deadline passes.

        Returns the final answer, or ``(0, {})`` when the deadline passed first."""
        first_poll = config.first_poll
        if first_poll is None:
            known = timeline.delay_seconds
            first_poll = known if known is not None else config.expected_seconds
        gevent.sleep(max(created + first_poll - time.monotonic(), 0))
        while True:
            status, answer = self.poll(equipment_id, task_id)
            if status != 0 and not (status == 200 and answer.get("code") == 204):
                return status, answer
            left = created + deadline - time.monotonic()
            if left <= 0:
                return 0, {}
            gevent.sleep(min(config.poll_interval, left))

    def report(self, name: str, started: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="TASK", name=name, response_time=(time.monotonic() - started) * 1000,
            response_length=0, exception=error, context={},
        )


class ProvisioningUser(CpeUser):
    """One task at a time for a fresh valid equipment id, from creation to its final status."""

    weight = 10
    _last_start = 0.0

    def wait_time(self) -> float:
        # Pacing: one task every ``config.pacing`` seconds, however long the task took.
        return max(self._last_start + config.pacing - time.monotonic(), 0.0)

    @task
    def provision(self) -> None:
        started = self._last_start = time.monotonic()
        wall_started = time.time()
        equipment_id = fresh_equipment_id()
        task_id = self.create(equipment_id)
        if task_id is None:
            self.report(TASK_E2E, started, TaskFailed("not created"))
            return
        known_tasks.append((equipment_id, task_id))
        try:
            status, answer = self.follow(equipment_id, task_id, started, config.deadline)
        except BaseException as stop:  # GreenletExit when Locust stops this user mid-task
            self.report(TASK_INTERRUPTED, started, interrupted(stop))
            raise
        if status == 200 and answer.get("code") == 200:
            self.report(TASK_E2E, started, None)
        elif status == 0:
            self.report(TASK_E2E, started, TaskFailed(f"not final after {config.deadline:.0f}s"))
        elif status == 500 and timeline.failures_injected_between(
            wall_started - FOLLOW_GRACE_SECONDS, time.time()
        ):
            self.report(TASK_INJECTED, started, None)
        else:
            self.report(TASK_E2E, started, TaskFailed(f"ended {status} {answer.get('message')}"))


class StatusReaderUser(CpeUser):
    """Reads the status of tasks already created: the polling load on its own."""

    weight = 3

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5) * config.poll_interval

    @task
    def read_status(self) -> None:
        if not known_tasks:
            equipment_id = fresh_equipment_id()
            task_id = self.create(equipment_id)
            if task_id is not None:
                known_tasks.append((equipment_id, task_id))
            return
        equipment_id, task_id = random.choice(known_tasks)
        self.poll(equipment_id, task_id)


class InvalidRequestUser(CpeUser):
    """Requests the contract turns down: each expected answer is a success."""

    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 2.0)

    def expect(self, method: str, path: str, name: str, status: int, message: str, *, body: Any = None,
               data: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {"name": name, "catch_response": True, "headers": dict(headers or {})}
        if data is not None:
            kwargs["data"] = data
            kwargs["headers"]["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        with self.client.request(method, path, **kwargs) as response:
            answer = self._json(response)
            got = str(answer.get("message", ""))
            if response.status_code == status and answer.get("code") == status and got.startswith(message):
                response.success()
            else:
                response.failure(f"expected {status} {message!r}, got {response.status_code} {answer!r}")

    @task(3)
    def create_with_bad_id(self) -> None:
        bad = random.choice(["AB12", "ABC_123", "abc-def-1", "12345"])
        self.expect("POST", f"/api/v1/equipment/cpe/{bad}", "invalid: POST bad id", 404,
                    EQUIPMENT_NOT_FOUND, body=provisioning_body())

    @task(2)
    def create_with_bad_body(self) -> None:
        body = provisioning_body()
        broken = random.choice(["interfaces", "vlan", "timeout", "username", "parameters"])
        if broken == "interfaces":
            body["parameters"]["interfaces"] = [1, 0]
        elif broken == "vlan":
            body["parameters"]["vlan"] = 5000
        elif broken == "timeout":
            body["timeoutInSeconds"] = -1
        elif broken == "username":
            body["parameters"]["username"] = ""
        else:
            del body["parameters"]
        self.expect("POST", f"/api/v1/equipment/cpe/{fresh_equipment_id()}", "invalid: POST bad body", 400,
                    "", body=body)

    @task(1)
    def create_with_bad_json(self) -> None:
        self.expect("POST", f"/api/v1/equipment/cpe/{fresh_equipment_id()}", "invalid: POST not JSON", 400,
                    "Request body is not valid JSON", data=b"{not json")

    @task(1)
    def create_too_large(self) -> None:
        self.expect("POST", f"/api/v1/equipment/cpe/{fresh_equipment_id()}", "invalid: POST too large", 413,
                    "Request body exceeds", data=b" " * (config.max_body_bytes + 1024))

    @task(2)
    def status_of_unknown_task(self) -> None:
        self.expect("GET", f"/api/v1/equipment/cpe/{fresh_equipment_id()}/task/{uuid.uuid4()}",
                    "invalid: GET unknown task", 404, TASK_NOT_FOUND)

    @task(1)
    def status_with_bad_task_id(self) -> None:
        self.expect("GET", f"/api/v1/equipment/cpe/{fresh_equipment_id()}/task/not-a-uuid",
                    "invalid: GET bad task id", 404, TASK_NOT_FOUND)

    @task(1)
    def request_with_a_wrong_token(self) -> None:
        if config.api_token:
            self.expect("GET", f"/api/v1/equipment/cpe/{fresh_equipment_id()}/task/{uuid.uuid4()}",
                        "invalid: wrong token", 401, "Unauthorized",
                        headers={"Authorization": "Bearer not-the-token"})

    @task(1)
    def status_with_bad_equipment_id(self) -> None:
        self.expect("GET", f"/api/v1/equipment/cpe/AB_1/task/{uuid.uuid4()}",
                    "invalid: GET bad id", 404, EQUIPMENT_NOT_FOUND)

    @task(1)
    def status_for_another_equipment(self) -> None:
        if known_tasks:
            _, task_id = random.choice(known_tasks)
            self.expect("GET", f"/api/v1/equipment/cpe/{fresh_equipment_id()}/task/{task_id}",
                        "invalid: GET task of another id", 404, TASK_NOT_FOUND)


class KnownFaultUser(CpeUser):
    """Tasks for ids the stub fails on purpose: the expected failure is the success."""

    weight = 1
    turn = 0

    def wait_time(self) -> float:
        return random.uniform(1.0, 3.0)

    @task
    def provision_faulty(self) -> None:
        choices = [(TASK_FAIL_ID, equipment_id) for equipment_id in config.fail_ids]
        choices += [(TASK_UNKNOWN_ID, equipment_id) for equipment_id in config.unknown_ids]
        if not choices:
            return
        # In turn rather than at random: every kind of fault is exercised, even in a short run.
        name, equipment_id = choices[self.turn % len(choices)]
        self.turn += 1
        started = time.monotonic()
        task_id = self.create(equipment_id)
        if task_id is None:
            self.report(name, started, TaskFailed("not created"))
            return
        try:
            status, answer = self.follow(equipment_id, task_id, started, config.fail_deadline)
        except BaseException as stop:
            self.report(TASK_INTERRUPTED, started, interrupted(stop))
            raise
        if name == TASK_FAIL_ID:
            expected_status, expected_message = 500, INTERNAL_ERROR
        else:
            expected_status, expected_message = 404, EQUIPMENT_NOT_FOUND
        if status == expected_status and answer.get("message") == expected_message:
            self.report(name, started, None)
        elif status == 0:
            self.report(name, started, TaskFailed(f"not final after {config.fail_deadline:.0f}s"))
        else:
            self.report(name, started, TaskFailed(f"expected {expected_status}, ended {status} {answer}"))
