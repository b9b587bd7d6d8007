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
    IdempotentRetryUser  (opt-in, weight 0 by default) creates with an ``Idempotency-Key`` and
                       replays the create as a client whose answer was lost: every replay must
                       name the same task (``task e2e idempotent``)
    CancellingUser     (opt-in, weight 0 by default) cancels each task at a random moment:
                       ``task e2e cancelled`` before the call, ``task e2e cancel too late`` after
    LongPollUser       (opt-in, weight 0 by default) follows each task with ``?wait=`` long-polls
                       from its creation: ``task e2e long-poll``
    WebhookUser        (opt-in, weight 0 by default) creates with a ``callbackUrl`` to this Locust
                       process's receiver and learns the end from the signed webhook:
                       ``task e2e webhook``, and one ``webhook delivery`` entry per call received
                       (its time: the completion-notice latency; a bad signature fails)

Faults at run time: ``--stub-schedule "30 failureRatio=0.2; 90 failureRatio=0"`` changes the
stub's behaviour through its admin endpoint (``PUT /admin/behaviour``) at those seconds into the
run, and puts it back at the end. While a failure ratio is on, a provisioning task that ends in
500 is an expected outcome, reported as ``task e2e injected failure`` instead of a failure.

Every client verifies Service B's certificate against the project's CA (``--ca-file``).
The options, the task journey, the fault schedule and the shapes (``--shape ramp|rate|burst``)
are in the ``loadkit`` package beside this file; this file holds the users and wires the hooks.
"""

from __future__ import annotations

import logging
import os
import random
import time
import urllib.request
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.ssl
from locust import FastHttpUser, User, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadkit.contract import (
    EQUIPMENT_NOT_FOUND,
    TASK_CANCELLED,
    TASK_E2E,
    TASK_FAIL_ID,
    TASK_IDEMPOTENT,
    TASK_LONG_POLL,
    TASK_NOT_FOUND,
    TASK_UNKNOWN_ID,
    TASK_WEBHOOK,
    create_path,
    fresh_equipment_id,
    json_object,
    provisioning_body,
    status_path,
)
from loadkit.journey import TaskJourney, cancel_judge, known_fault_judge, provisioning_judge
from loadkit.options import RunConfig, add_arguments
from loadkit.shapes import ScenarioShape
from loadkit.stub_schedule import MESSAGE, BehaviourTimeline, StubAdmin, StubSchedule, verified_context
from loadkit.webhooks import WebhookJourney, WebhookNotices

__all__ = ["CancellingUser", "IdempotentRetryUser", "InvalidRequestUser", "KnownFaultUser", "LongPollUser",
           "ProvisioningUser", "ScenarioShape", "StatusReaderUser", "WebhookUser"]

log = logging.getLogger("cpe-load")

# This process's state, reset at every test start: what it learnt of the stub's behaviour,
# and the tasks it created, for the status readers: (equipment id, task id).
timeline = BehaviourTimeline()
known_tasks: deque[tuple[str, str]] = deque(maxlen=10_000)


# --- users --------------------------------------------------------------------------------------


def gevent_context_factory(ca_file: str) -> Callable[..., gevent.ssl.SSLContext]:
    """Locust's HTTPS client verifies Service B against the project's CA, never insecurely."""

    def factory(*_: Any, **__: Any) -> gevent.ssl.SSLContext:
        return gevent.ssl.create_default_context(cafile=ca_file)

    return factory


class CpeUser(FastHttpUser):
    abstract = True
    host = os.environ.get("LOAD_HOST") or "https://127.0.0.1:8081"
    insecure = False
    connection_timeout = 10.0
    network_timeout = 30.0

    def __init__(self, environment: Environment) -> None:
        self.config = RunConfig.of(environment)
        # FastHttpUser builds its client from these in its __init__: set them first.
        self.ssl_context_factory = gevent_context_factory(self.config.ca_file)
        if self.config.api_token:
            self.default_headers = {"Authorization": f"Bearer {self.config.api_token}"}
        super().__init__(environment)
        self.journey = TaskJourney(self.client, environment.events, self.config, timeline)


class ProvisioningUser(CpeUser):
    """One task at a time for a fresh valid equipment id, from creation to its final status."""

    weight = 10
    _last_start = 0.0

    def wait_time(self) -> float:
        # Pacing: one task every ``config.pacing`` seconds, however long the task took.
        return max(self._last_start + self.config.pacing - time.monotonic(), 0.0)

    @task
    def provision(self) -> None:
        self._last_start = time.monotonic()
        self.journey.run(TASK_E2E, fresh_equipment_id(), self.config.deadline, provisioning_judge(timeline),
                         created=lambda equipment_id, task_id: known_tasks.append((equipment_id, task_id)))


class StatusReaderUser(CpeUser):
    """Reads the status of tasks already created: the polling load on its own."""

    weight = 3

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5) * self.config.poll_interval

    @task
    def read_status(self) -> None:
        if not known_tasks:
            equipment_id = fresh_equipment_id()
            task_id = self.journey.create(equipment_id)
            if task_id is not None:
                known_tasks.append((equipment_id, task_id))
            return
        equipment_id, task_id = random.choice(known_tasks)
        self.journey.poll(equipment_id, task_id)


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
            answer = json_object(response.content)
            got = str(answer.get("message", ""))
            if response.status_code == status and answer.get("code") == status and got.startswith(message):
                response.success()
            else:
                response.failure(f"expected {status} {message!r}, got {response.status_code} {answer!r}")

    @task(3)
    def create_with_bad_id(self) -> None:
        bad = random.choice(["AB12", "ABC_123", "abc-def-1", "12345"])
        self.expect("POST", create_path(bad), "invalid: POST bad id", 404, EQUIPMENT_NOT_FOUND,
                    body=provisioning_body())

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
        self.expect("POST", create_path(fresh_equipment_id()), "invalid: POST bad body", 400, "", body=body)

    @task(1)
    def create_with_bad_json(self) -> None:
        self.expect("POST", create_path(fresh_equipment_id()), "invalid: POST not JSON", 400,
                    "Request body is not valid JSON", data=b"{not json")

    @task(1)
    def create_too_large(self) -> None:
        self.expect("POST", create_path(fresh_equipment_id()), "invalid: POST too large", 413,
                    "Request body exceeds", data=b" " * (self.config.max_body_bytes + 1024))

    @task(2)
    def status_of_unknown_task(self) -> None:
        self.expect("GET", status_path(fresh_equipment_id(), str(uuid.uuid4())),
                    "invalid: GET unknown task", 404, TASK_NOT_FOUND)

    @task(1)
    def status_with_bad_task_id(self) -> None:
        self.expect("GET", status_path(fresh_equipment_id(), "not-a-uuid"),
                    "invalid: GET bad task id", 404, TASK_NOT_FOUND)

    @task(1)
    def request_with_a_wrong_token(self) -> None:
        if self.config.api_token:
            self.expect("GET", status_path(fresh_equipment_id(), str(uuid.uuid4())),
                        "invalid: wrong token", 401, "Unauthorized",
                        headers={"Authorization": "Bearer not-the-token"})

    @task(1)
    def status_with_bad_equipment_id(self) -> None:
        self.expect("GET", status_path("AB_1", str(uuid.uuid4())), "invalid: GET bad id", 404,
                    EQUIPMENT_NOT_FOUND)

    @task(1)
    def status_for_another_equipment(self) -> None:
        if known_tasks:
            _, task_id = random.choice(known_tasks)
            self.expect("GET", status_path(fresh_equipment_id(), task_id),
                        "invalid: GET task of another id", 404, TASK_NOT_FOUND)


class KnownFaultUser(CpeUser):
    """Tasks for ids the stub fails on purpose: the expected failure is the success."""

    weight = 1
    turn = 0

    def wait_time(self) -> float:
        return random.uniform(1.0, 3.0)

    @task
    def provision_faulty(self) -> None:
        choices = [(TASK_FAIL_ID, equipment_id) for equipment_id in self.config.fail_ids]
        choices += [(TASK_UNKNOWN_ID, equipment_id) for equipment_id in self.config.unknown_ids]
        if not choices:
            return
        # In turn rather than at random: every kind of fault is exercised, even in a short run.
        entry, equipment_id = choices[self.turn % len(choices)]
        self.turn += 1
        self.journey.run(entry, equipment_id, self.config.fail_deadline, known_fault_judge(entry))


class IdempotentRetryUser(CpeUser):
    """Creates with an ``Idempotency-Key`` and replays the create, as order-management software
    whose first answer was lost does: every replay must name the task the first create made."""

    # Locust drops classes of weight 0 before the options apply: the effective weight is the
    # option's, whose default 0 makes this scenario opt-in.
    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def provision_idempotently(self) -> None:
        key, body = str(uuid.uuid4()), provisioning_body()

        def replay(equipment_id: str, task_id: str) -> None:
            for _ in range(self.config.idempotent_retries):
                self.journey.replay(equipment_id, body, key, task_id)

        self.journey.run(TASK_IDEMPOTENT, fresh_equipment_id(), self.config.deadline,
                         provisioning_judge(timeline, TASK_IDEMPOTENT), created=replay, body=body,
                         headers={"Idempotency-Key": key})


class CancellingUser(CpeUser):
    """Cancels each of its tasks at a random moment before, during or just after its call."""

    # Locust drops classes of weight 0 before the options apply: the effective weight is the
    # option's, whose default 0 makes this scenario opt-in.
    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def provision_and_cancel(self) -> None:
        def cancel_at_random(equipment_id: str, task_id: str) -> None:
            gevent.sleep(random.uniform(0, 1.2 * self.config.expected_seconds))
            self.journey.cancel(equipment_id, task_id)

        self.journey.run(TASK_CANCELLED, fresh_equipment_id(), self.config.deadline, cancel_judge,
                         created=cancel_at_random)


class LongPollUser(CpeUser):
    """One task at a time, followed with ``?wait=`` long-polls from its creation: the status
    arrives as soon as the task is final, without polling."""

    # Locust drops classes of weight 0 before the options apply: the effective weight is the
    # option's, whose default 0 makes this scenario opt-in.
    weight = 1

    def __init__(self, environment: Environment) -> None:
        # A long-poll answers within its ?wait=: give the socket that long, and some.
        self.network_timeout = RunConfig.of(environment).long_poll_wait + 15
        super().__init__(environment)

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def provision_with_long_poll(self) -> None:
        self.journey.run(TASK_LONG_POLL, fresh_equipment_id(), self.config.deadline,
                         provisioning_judge(timeline, TASK_LONG_POLL), follow=self.journey.follow_long_poll)


class WebhookUser(CpeUser):
    """One task at a time, created with a ``callbackUrl`` to this process's receiver; its end
    is the verified webhook's arrival."""

    # Locust drops classes of weight 0 before the options apply: the effective weight is the
    # option's, whose default 0 makes this scenario opt-in.
    weight = 1

    def wait_time(self) -> float:
        return random.uniform(0.5, 1.5)

    @task
    def provision_with_webhook(self) -> None:
        notices = webhook_notices[self.environment]
        WebhookJourney(self.journey, notices).run(TASK_WEBHOOK, fresh_equipment_id(), self.config.deadline,
                                                  provisioning_judge(timeline, TASK_WEBHOOK))


# --- hooks ------------------------------------------------------------------------------------
# (Locust's EventHook.add_listener has no annotations: hence the type: ignore comments.)


events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]


@events.init.add_listener  # type: ignore[untyped-decorator]
def on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # used as a library, e.g. by a test building its own Environment
        return
    config = RunConfig.of(environment)
    weights: dict[type[User], int] = {
        ProvisioningUser: options.weight_provision,
        StatusReaderUser: options.weight_status,
        InvalidRequestUser: options.weight_invalid,
        KnownFaultUser: options.weight_faults if config.has_known_faults else 0,
        IdempotentRetryUser: options.weight_idempotent,
        CancellingUser: options.weight_cancel,
        LongPollUser: options.weight_long_poll,
        WebhookUser: options.weight_webhook,
    }
    for user_class, weight in weights.items():
        user_class.weight = weight
    # Locust's dispatcher needs every listed class to have a positive weight.
    environment.user_classes[:] = [cls for cls in environment.user_classes if weights.get(cls, 1) > 0]
    if not isinstance(environment.runner, MasterRunner) and environment.runner is not None:
        environment.runner.register_message(MESSAGE, on_behaviour_message)


def on_behaviour_message(environment: Environment, msg: Any, **_: Any) -> None:
    timeline.record(msg.data["at"], msg.data["behaviour"])


# The schedule a test started, until it stops.
schedules: weakref.WeakKeyDictionary[Environment, StubSchedule] = weakref.WeakKeyDictionary()
# This process's webhook receiver while a test with WebhookUser runs (not on a master).
webhook_notices: weakref.WeakKeyDictionary[Environment, WebhookNotices] = weakref.WeakKeyDictionary()


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def on_test_start(environment: Environment, **_: Any) -> None:
    timeline.reset()
    known_tasks.clear()
    if WebhookUser in environment.user_classes and not isinstance(environment.runner, MasterRunner):
        notices = WebhookNotices(environment.events, RunConfig.of(environment))
        notices.start()
        webhook_notices[environment] = notices
        log.info("webhook receiver at %s", notices.url)
    if isinstance(environment.runner, WorkerRunner):
        return
    config = RunConfig.of(environment)
    host = (environment.host or ProvisioningUser.host).rstrip("/")
    try:
        with urllib.request.urlopen(f"{host}/health", context=verified_context(config.ca_file), timeout=5):
            pass
    except (OSError, ValueError) as error:
        log.error("Service B does not answer at %s/health (%s); is the platform up (task dev)?", host, error)
        environment.process_exit_code = 2
        if environment.runner is not None:
            gevent.spawn_later(0.1, environment.runner.quit)
        return
    schedule = StubSchedule(environment, StubAdmin(environment, config.stub_url, config.ca_file),
                            config.schedule)
    schedules[environment] = schedule
    schedule.start()


@events.test_stopping.add_listener  # type: ignore[untyped-decorator]
def on_test_stopping(environment: Environment, **_: Any) -> None:
    if (schedule := schedules.pop(environment, None)) is not None:
        schedule.stop()


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def on_test_stop(environment: Environment, **_: Any) -> None:
    if (notices := webhook_notices.pop(environment, None)) is not None:
        notices.stop()
