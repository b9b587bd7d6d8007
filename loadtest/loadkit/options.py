"""The scenarios' command-line options (each with its ``LOAD_*`` variable), and what the users
read of them, resolved once per Locust environment.

Nothing is kept in a module global: the users, the fault schedule and the shapes each ask for
``RunConfig.of(environment)`` (or, for the shapes, read ``environment.parsed_options``), so
a reader sees where every value comes from.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

from locust.env import Environment

from .shapes import SHAPES, task_pacing
from .stub_schedule import Schedule, parse_schedule


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def words(text: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(word.strip() for word in text.split(",") if word.strip())


def add_arguments(parser: Any) -> None:
    """Listener of ``events.init_command_line_parser``: the scenarios' and the shapes' options."""
    group = parser.add_argument_group("CPE provisioning", "scenarios of loadtest/locustfile.py")
    default_ca = os.environ.get("TLS_CA_FILE") or os.path.join(_env("CERT_DIR", "certs"), "ca.pem")
    group.add_argument("--ca-file", env_var="LOAD_CA_FILE", default=default_ca,
                       help="CA certificate that signed Service B's and the stub's certificates")
    tokens = words(os.environ.get("API_TOKENS", ""))
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
    group.add_argument("--weight-idempotent", env_var="LOAD_WEIGHT_IDEMPOTENT", type=int, default=0,
                       help="IdempotentRetryUser weight (opt-in: creates with an Idempotency-Key, "
                            "replayed --idempotent-retries times)")
    group.add_argument("--idempotent-retries", env_var="LOAD_IDEMPOTENT_RETRIES", type=int, default=2,
                       help="replays of each idempotent create, each of which must name the same task")
    group.add_argument("--weight-cancel", env_var="LOAD_WEIGHT_CANCEL", type=int, default=0,
                       help="CancellingUser weight (opt-in: cancels each of its tasks at a random "
                            "moment before, during or after its call)")
    group.add_argument("--weight-long-poll", env_var="LOAD_WEIGHT_LONG_POLL", type=int, default=0,
                       help="LongPollUser weight (opt-in: follows each task with ?wait= long-polls)")
    group.add_argument("--long-poll-wait", env_var="LOAD_LONG_POLL_WAIT", type=float, default=20.0,
                       help="the ?wait= of each long-poll in seconds (Service B caps it at "
                            "STATUS_MAX_WAIT_SECONDS, 25)")
    group.add_argument("--weight-webhook", env_var="LOAD_WEIGHT_WEBHOOK", type=int, default=0,
                       help="WebhookUser weight (opt-in: creates with a callbackUrl to this process's "
                            "receiver and waits for the signed webhook; needs the devkit on PYTHONPATH and "
                            "the platform's WEBHOOK_* settings, see loadtest/README.md)")
    group.add_argument("--webhook-secret", env_var="LOAD_WEBHOOK_SECRET", default=_env("WEBHOOK_SECRET", ""),
                       help="the platform's WEBHOOK_SECRET (whsec_...), to verify each delivery "
                            "(default: WEBHOOK_SECRET)")
    group.add_argument("--webhook-host", env_var="LOAD_WEBHOOK_HOST", default="127.0.0.1",
                       help="address the webhook receiver listens on and names in callbackUrl")
    group.add_argument("--webhook-port", env_var="LOAD_WEBHOOK_PORT", type=int, default=0,
                       help="the webhook receiver's port (default 0: a free one per Locust process)")
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
    shapes = parser.add_argument_group("CPE load shapes", "see loadtest/loadkit/shapes.py")
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


@dataclass(frozen=True)
class RunConfig:
    """The options the users read, resolved from Locust's parsed options."""

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
    schedule: Schedule = field(default_factory=list)
    idempotent_retries: int = 2
    long_poll_wait: float = 20.0
    webhook_secret: str = field(default="", repr=False)
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 0

    _resolved: ClassVar[weakref.WeakKeyDictionary[Environment, RunConfig]] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, environment: Environment) -> RunConfig:
        """The configuration of a Locust environment, resolved on first use; the defaults when
        there are no parsed options (a test building its own Environment)."""
        if environment not in cls._resolved:
            options = environment.parsed_options
            cls._resolved[environment] = cls() if options is None else cls.from_options(options)
        return cls._resolved[environment]

    @property
    def has_known_faults(self) -> bool:
        return bool(self.fail_ids or self.unknown_ids)

    @classmethod
    def from_options(cls, options: Any) -> RunConfig:
        expected = max(options.expected_seconds, 0.0)
        first_poll = options.first_poll if options.first_poll >= 0 else None
        interval = options.poll_interval if options.poll_interval > 0 else min(max(expected / 10, 0.2), 5.0)
        deadline = options.task_deadline if options.task_deadline > 0 else 2 * expected + 30
        attempts = max(options.service_a_attempts, 1)
        return cls(
            ca_file=options.ca_file,
            api_token=options.api_token,
            expected_seconds=expected,
            first_poll=first_poll,
            poll_interval=interval,
            deadline=deadline,
            pacing=task_pacing(options),
            fail_ids=words(options.fail_ids),
            unknown_ids=words(options.unknown_ids),
            # Each attempt waits the stub's delay; the backoffs between them add up to ~1 minute.
            fail_deadline=attempts * (expected + 5) + 60 + deadline,
            max_body_bytes=options.max_body_bytes,
            stub_url=options.stub_url.rstrip("/"),
            schedule=parse_schedule(options.stub_schedule),
            idempotent_retries=max(options.idempotent_retries, 0),
            long_poll_wait=max(options.long_poll_wait, 0.0),
            webhook_secret=options.webhook_secret,
            webhook_host=options.webhook_host,
            webhook_port=max(options.webhook_port, 0),
        )

    @property
    def cert_dir(self) -> str:
        """The project's certificate folder (the CA's): the webhook receiver serves its
        server certificate, which the platform verifies against WEBHOOK_CA_FILE."""
        return os.path.dirname(self.ca_file) or "."
