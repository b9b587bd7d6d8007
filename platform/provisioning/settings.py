"""One frozen settings object per component, read from the environment and validated once.

Every variable, its default and meaning is listed in ``.env.example`` and the README.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import names
from .environment import Environment
from .errors import SettingsError
from .request_limits import DEFAULT_LIMITS, RequestLimits

DEFAULT_CERT_DIR = "certs"

# Webhook retries: after the first attempt, one more after each pause (about 44 minutes in all
# by default, after Standard Webhooks' guidance of growing pauses); then the dead-letter queue.
DEFAULT_WEBHOOK_RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0, 1800.0)
MAX_WEBHOOK_RETRIES = 20
MIN_WEBHOOK_RETRY_DELAY = 0.1
MAX_WEBHOOK_RETRY_DELAY = 86_400.0

# Tasks in flight per worker process: with the default two processes, 10,000 held 60-s calls,
# each one connection (one file) and ~65 KiB (README, "Performance and capacity").
DEFAULT_WORKER_PREFETCH = 5000

# How long the worker pool waits for a publish's confirm (WORKER_CONFIRM_TIMEOUT_SECONDS). Each of
# its publishes (a result, a webhook, a hand-over) is made while it holds the task's message, so
# nobody waits on it but that task; a confirm that cannot come ends the wait before the bound in
# most cases (a nack, a resource alarm, a connection closed; a silent one once its heartbeat
# gives it up). A timed-out confirm is published again, and the timeout renews the channel,
# failing every other confirm awaited on it: a bound as short as Service B's
# (PUBLISH_TIMEOUT_SECONDS, where a client waits) turned a busy event loop's late confirms into
# a storm of duplicates (loadtest/RESULTS.md, issue 13).
DEFAULT_WORKER_CONFIRM_TIMEOUT_SECONDS = 60.0
WORKER_CONFIRM_TIMEOUT_BOUNDS = (0.1, 3600.0)

# AMQP heartbeats (aiormq 7): a connection sends a heartbeat every max(1, timeout // 2) s and
# gives up on one that has received no frame for 3 * (timeout + 1) s, checking at each send.
DEFAULT_AMQP_HEARTBEAT_SECONDS = 60
MIN_AMQP_HEARTBEAT_SECONDS = 1  # 0 would switch heartbeats off: a stall would never be noticed
MAX_AMQP_HEARTBEAT_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    key_prefix: str
    task_ttl_seconds: int
    socket_timeout_seconds: float
    max_connections: int
    # TASK_EVENT_LOG_LIMIT: events kept per task for Server-Sent Events resumption (a stream).
    event_log_limit: int = 64
    # REDIS_SENTINELS (host:port, comma-separated): find the master through Redis Sentinel
    # (``REDIS_SENTINEL_MASTER`` names it) instead of ``url``'s host; ``url`` still gives the
    # database, password and TLS.
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "mymaster"
    # REDIS_WAIT_REPLICAS (0 = off): the writes no failover may lose (a create before its 200, a
    # final status before its result is acked, a tombstone) wait, on the write's own
    # connection, until this many replicas acknowledged them (``WAIT``), at most
    # REDIS_WAIT_TIMEOUT_SECONDS (below REDIS_TIMEOUT_SECONDS); fewer in time is a store failure.
    wait_replicas: int = 0
    wait_timeout_seconds: float = 1.0
    # REDIS_CLUSTER (true/false): Redis Cluster through redis-py's ``RedisCluster``; ``url``
    # names any seed node (its password and TLS serve every node). Not with REDIS_SENTINELS.
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and self.sentinels:
            raise SettingsError("REDIS_CLUSTER", "cannot be combined with REDIS_SENTINELS")
        if self.wait_replicas and self.wait_timeout_seconds >= self.socket_timeout_seconds:
            raise SettingsError("REDIS_WAIT_TIMEOUT_SECONDS",
                                "must be below REDIS_TIMEOUT_SECONDS (a WAIT outlasting the "
                                "socket timeout would read as a lost connection)")

    @classmethod
    def from_env(cls, env: Environment) -> RedisSettings:
        return cls(
            url=env.text("REDIS_URL", "redis://127.0.0.1:6379/0"),
            key_prefix=env.text("REDIS_KEY_PREFIX", names.DEFAULT_KEY_PREFIX),
            task_ttl_seconds=env.integer("TASK_TTL_SECONDS", 86_400, minimum=1),
            socket_timeout_seconds=env.number("REDIS_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            max_connections=env.integer("REDIS_MAX_CONNECTIONS", 64, minimum=1),
            event_log_limit=env.integer("TASK_EVENT_LOG_LIMIT", 64, minimum=8),
            sentinels=_addresses(env, "REDIS_SENTINELS"),
            sentinel_master=env.text("REDIS_SENTINEL_MASTER", "mymaster"),
            wait_replicas=env.integer("REDIS_WAIT_REPLICAS", 0, minimum=0),
            wait_timeout_seconds=env.number("REDIS_WAIT_TIMEOUT_SECONDS", 1.0, minimum=0.01),
            cluster=env.flag("REDIS_CLUSTER", False),
        )


def _addresses(env: Environment, name: str) -> tuple[tuple[str, int], ...]:
    """A comma-separated list of host:port (IPv6 hosts in brackets)."""
    addresses = []
    for word in (part.strip() for part in (env.optional_text(name) or "").split(",")):
        if not word:
            continue
        host, _, port = word.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(name, f"must be host:port pairs, comma-separated; got {word!r}")
        addresses.append((host.strip("[]"), int(port)))
    return tuple(addresses)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str
    tasks_queue: str
    results_queue: str
    delivery_limit: int
    dead_letter_ttl_seconds: int
    max_message_bytes: int
    publish_timeout_seconds: float
    reconnect_initial_seconds: float
    reconnect_max_seconds: float
    # Webhook deliveries (``provisioning.webhooks``): their queue, and the pauses before each
    # retry, in seconds; each distinct pause has a delay queue of its own (``topology``).
    webhooks_queue: str = names.DEFAULT_WEBHOOKS_QUEUE
    webhook_retry_delays: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_DELAYS
    # Every broker address (AMQP_URL, or AMQP_URLS, comma-separated: a cluster's nodes); ``url``
    # is the first. A process shuffles them and moves to the next on connection loss.
    urls: tuple[str, ...] = ()
    # QUORUM_INITIAL_GROUP_SIZE: replicas of each quorum queue (RabbitMQ caps it at the nodes).
    quorum_initial_group_size: int = 3
    # AMQP_HEARTBEAT_SECONDS: the heartbeat timeout every connection asks for (``from_env`` puts
    # it in each URL's query, where aiormq reads it; see ``with_heartbeat``).
    heartbeat_seconds: int = DEFAULT_AMQP_HEARTBEAT_SECONDS
    # AMQP_CONNECT_TIMEOUT_SECONDS: a connection attempt (TCP, TLS, the AMQP handshake, the
    # queue declarations, the channels) that has not finished by then is given up and the next
    # address tried; aiormq's own handshake has no bound, so a silent network would hold it.
    connect_timeout_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: Environment) -> BrokerSettings:
        tasks_queue = env.text("TASKS_QUEUE", names.DEFAULT_TASKS_QUEUE)
        results_queue = env.text("RESULTS_QUEUE", names.DEFAULT_RESULTS_QUEUE)
        webhooks_queue = env.text("WEBHOOKS_QUEUE", names.DEFAULT_WEBHOOKS_QUEUE)
        if tasks_queue == results_queue:
            raise SettingsError("RESULTS_QUEUE", "must differ from TASKS_QUEUE")
        if webhooks_queue in (tasks_queue, results_queue):
            raise SettingsError("WEBHOOKS_QUEUE", "must differ from TASKS_QUEUE and RESULTS_QUEUE")
        heartbeat = _bounded_integer(env, "AMQP_HEARTBEAT_SECONDS", DEFAULT_AMQP_HEARTBEAT_SECONDS,
                                     (MIN_AMQP_HEARTBEAT_SECONDS, MAX_AMQP_HEARTBEAT_SECONDS))
        urls = tuple(with_heartbeat(url, heartbeat) for url in _broker_urls(env))
        return cls(
            url=urls[0],
            tasks_queue=tasks_queue,
            results_queue=results_queue,
            delivery_limit=env.integer("QUEUE_DELIVERY_LIMIT", 20, minimum=1),
            dead_letter_ttl_seconds=env.integer("DEAD_LETTER_TTL_SECONDS", 7 * 86_400, minimum=60),
            max_message_bytes=env.integer("MAX_MESSAGE_BYTES", 256 * 1024, minimum=1024),
            publish_timeout_seconds=env.number("PUBLISH_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            reconnect_initial_seconds=env.number("RECONNECT_INITIAL_SECONDS", 0.5, minimum=0.01),
            reconnect_max_seconds=env.number("RECONNECT_MAX_SECONDS", 10.0, minimum=0.01),
            webhooks_queue=webhooks_queue,
            webhook_retry_delays=_retry_delays(env),
            urls=urls,
            quorum_initial_group_size=env.integer("QUORUM_INITIAL_GROUP_SIZE", 3, minimum=1),
            heartbeat_seconds=heartbeat,
            connect_timeout_seconds=env.number("AMQP_CONNECT_TIMEOUT_SECONDS", 15.0, minimum=1.0),
        )

    def __post_init__(self) -> None:
        if not self.urls:  # built directly (tests, tools) with one url
            object.__setattr__(self, "urls", (self.url,))


def with_heartbeat(url: str, seconds: int) -> str:
    """``url`` asking for a heartbeat timeout of ``seconds``: its ``heartbeat`` query parameter,
    which aiormq reads (and sends in its ``Connection.TuneOk``, whatever the broker proposed: the
    client's value is the one in force), set to ``seconds``, replacing any the URL had."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key != "heartbeat"]
    query.append(("heartbeat", str(seconds)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _broker_urls(env: Environment) -> tuple[str, ...]:
    """``AMQP_URLS`` when set, else ``AMQP_URL``; either may list several, comma-separated."""
    listed = env.optional_text("AMQP_URLS")
    name = "AMQP_URL" if listed is None else "AMQP_URLS"
    raw = listed if listed is not None else env.text("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    urls = tuple(url.strip() for url in raw.split(",") if url.strip())
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise SettingsError(name, "must be amqp:// or amqps:// URLs, comma-separated")
    if not urls:
        raise SettingsError(name, "must name at least one broker")
    return urls


def _retry_delays(env: Environment) -> tuple[float, ...]:
    """``WEBHOOK_RETRY_SCHEDULE``: comma-separated pauses in seconds, each from
    ``MIN_WEBHOOK_RETRY_DELAY`` to ``MAX_WEBHOOK_RETRY_DELAY``, at most ``MAX_WEBHOOK_RETRIES``."""
    name = "WEBHOOK_RETRY_SCHEDULE"
    raw = env.optional_text("WEBHOOK_RETRY_SCHEDULE")
    if raw is None:
        return DEFAULT_WEBHOOK_RETRY_DELAYS
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(name, f"must be comma-separated numbers of seconds, got {raw!r}") from None
    if len(delays) > MAX_WEBHOOK_RETRIES:
        raise SettingsError(name, f"must hold at most {MAX_WEBHOOK_RETRIES} pauses, got {len(delays)}")
    for delay in delays:
        if not MIN_WEBHOOK_RETRY_DELAY <= delay <= MAX_WEBHOOK_RETRY_DELAY:  # NaN fails too
            raise SettingsError(name, f"pauses must be from {MIN_WEBHOOK_RETRY_DELAY} to "
                                      f"{MAX_WEBHOOK_RETRY_DELAY:.0f} seconds, got {delay}")
    return delays


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def from_env(cls, env: Environment) -> TlsSettings:
        cert_dir = Path(env.text("CERT_DIR", DEFAULT_CERT_DIR))
        return cls(
            ca_file=Path(env.text("TLS_CA_FILE", str(cert_dir / "ca.pem"))),
            cert_file=Path(env.text("TLS_CERT_FILE", str(cert_dir / "server.pem"))),
            key_file=Path(env.text("TLS_KEY_FILE", str(cert_dir / "server-key.pem"))),
        )


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where a component's processes serve /metrics: process ``i`` on ``base_port + i``."""

    host: str
    base_port: int

    @classmethod
    def from_env(cls, env: Environment, port_variable: str, default_port: int) -> MetricsSettings:
        return cls(
            host=env.text("METRICS_HOST", "127.0.0.1"),
            base_port=env.integer(port_variable, default_port),
        )

    def port(self, process_index: int) -> int:
        """0 when metrics are switched off (base port 0)."""
        return self.base_port + process_index if self.base_port else 0


# HttpServerSettings' bounds: (minimum, maximum) of each variable.
HTTP_TIMEOUT_RANGE = (0.5, 300.0)  # HTTP_REQUEST_TIMEOUT_SECONDS, HTTP_REQUEST_DEADLINE_SECONDS
HTTP_KEEP_ALIVE_RANGE = (1.0, 3600.0)  # HTTP_KEEP_ALIVE_TIMEOUT_SECONDS
HTTP_CONNECTIONS_RANGE = (1, 1_000_000)  # HTTP_MAX_CONNECTIONS


@dataclass(frozen=True, slots=True)
class HttpServerSettings:
    """What one HTTP server process (Service B's, the stub's) lets a client hold
    (``provisioning.http_protocol``): every bound applies to each process."""

    # HTTP_REQUEST_TIMEOUT_SECONDS: the longest pause between two bytes of a request, head or
    # body (Sanic's REQUEST_TIMEOUT); then 408.
    request_timeout_seconds: float = 10.0
    # HTTP_REQUEST_DEADLINE_SECONDS: the whole request, head and body, from its first byte,
    # however steadily it trickles in; then 408. At least the request timeout.
    request_deadline_seconds: float = 10.0
    # HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: an idle connection between requests (Sanic's default).
    keep_alive_timeout_seconds: float = 120.0
    # HTTP_MAX_CONNECTIONS: open connections per process (never more than the process's file
    # limit allows); one more is answered 503 with Retry-After and closed.
    max_connections: int = 10_000

    def __post_init__(self) -> None:
        if self.request_deadline_seconds < self.request_timeout_seconds:
            raise SettingsError("HTTP_REQUEST_DEADLINE_SECONDS",
                                f"must be at least HTTP_REQUEST_TIMEOUT_SECONDS "
                                f"({self.request_timeout_seconds}), got {self.request_deadline_seconds}")

    @classmethod
    def from_env(cls, env: Environment) -> HttpServerSettings:
        return cls(
            request_timeout_seconds=_bounded_number(
                env, "HTTP_REQUEST_TIMEOUT_SECONDS", 10.0, HTTP_TIMEOUT_RANGE),
            request_deadline_seconds=_bounded_number(
                env, "HTTP_REQUEST_DEADLINE_SECONDS", 10.0, HTTP_TIMEOUT_RANGE),
            keep_alive_timeout_seconds=_bounded_number(
                env, "HTTP_KEEP_ALIVE_TIMEOUT_SECONDS", 120.0, HTTP_KEEP_ALIVE_RANGE),
            max_connections=_bounded_integer(
                env, "HTTP_MAX_CONNECTIONS", 10_000, HTTP_CONNECTIONS_RANGE),
        )


DEFAULT_HTTP_SERVER = HttpServerSettings()


def _bounded_number(env: Environment, name: str, default: float,
                    bounds: tuple[float, float]) -> float:
    value = env.number(name, default, minimum=bounds[0])
    if not value <= bounds[1]:  # NaN fails too
        raise SettingsError(name, f"must be at most {bounds[1]:g}, got {value}")
    return value


def _bounded_integer(env: Environment, name: str, default: int, bounds: tuple[int, int]) -> int:
    value = env.integer(name, default, minimum=bounds[0])
    if value > bounds[1]:
        raise SettingsError(name, f"must be at most {bounds[1]}, got {value}")
    return value


class EquipmentConcurrency(enum.StrEnum):
    """How tasks of one equipment id relate (``EQUIPMENT_CONCURRENCY``)."""

    PARALLEL = "parallel"  # the classic behaviour: tasks of one device may run at once
    REJECT = "reject"  # a create for a device with an unfinished task answers 409
    SERIALIZE = "serialize"  # a device's tasks wait their turn and run one after another

    @property
    def exclusive(self) -> bool:
        """One Service A call per device at a time (the worker's lease): reject and serialize."""
        return self is not EquipmentConcurrency.PARALLEL

    @classmethod
    def from_env(cls, env: Environment) -> EquipmentConcurrency:
        raw = env.text("EQUIPMENT_CONCURRENCY", cls.PARALLEL.value).lower()
        try:
            return cls(raw)
        except ValueError:
            allowed = ", ".join(mode.value for mode in cls)
            raise SettingsError("EQUIPMENT_CONCURRENCY", f"must be one of {allowed}, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    """Idempotent creates (``Idempotency-Key``): how long a key is kept, and the fingerprint key."""

    ttl_seconds: int
    # HMAC key of the request fingerprint; None leaves the device credentials out of it.
    fingerprint_secret: bytes | None = field(repr=False)

    MIN_SECRET_LENGTH = 16

    @classmethod
    def from_env(cls, env: Environment) -> IdempotencySettings:
        secret = env.optional_text("IDEMPOTENCY_FINGERPRINT_SECRET")
        if secret is not None and len(secret) < cls.MIN_SECRET_LENGTH:
            raise SettingsError("IDEMPOTENCY_FINGERPRINT_SECRET",
                                f"must be at least {cls.MIN_SECRET_LENGTH} characters long")
        return cls(
            ttl_seconds=env.integer("IDEMPOTENCY_TTL_SECONDS", 86_400, minimum=1),
            fingerprint_secret=None if secret is None else secret.encode(),
        )


WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24  # Standard Webhooks: secrets of 24 to 64 random bytes


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Completion webhooks (``callbackUrl``): which receivers are allowed, how deliveries are
    signed and bounded. Off (a ``callbackUrl`` is refused) while ``allowed_hosts`` is empty."""

    allowed_hosts: tuple[str, ...]  # WEBHOOK_ALLOWED_HOSTS: exact names, *.suffix, or *
    allow_http: bool  # WEBHOOK_ALLOW_HTTP: plain http:// receivers, for local development
    allow_private: bool  # WEBHOOK_ALLOW_PRIVATE: private and loopback addresses
    # WEBHOOK_SECRET: the signing keys, first one signs; only the delivering process reads it.
    secrets: tuple[bytes, ...] = field(repr=False)
    timeout_seconds: float  # WEBHOOK_TIMEOUT_SECONDS: one delivery attempt, connect to answer
    prefetch: int  # WEBHOOK_PREFETCH: deliveries in flight per delivering process
    ca_file: Path | None  # WEBHOOK_CA_FILE: a CA trusted besides the system's, for receivers

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_hosts)

    @classmethod
    def from_env(cls, env: Environment, *, signing: bool) -> WebhookSettings:
        hosts = tuple(sorted(host.lower() for host in env.words("WEBHOOK_ALLOWED_HOSTS")))
        secrets = _webhook_secrets(env.optional_text("WEBHOOK_SECRET")) if signing else ()
        if signing and hosts and not secrets:
            raise SettingsError("WEBHOOK_SECRET", "is required when WEBHOOK_ALLOWED_HOSTS is set")
        timeout = env.number("WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1)
        if timeout > 60:
            raise SettingsError("WEBHOOK_TIMEOUT_SECONDS", f"must be at most 60, got {timeout}")
        ca_file = env.optional_text("WEBHOOK_CA_FILE")
        return cls(
            allowed_hosts=hosts,
            allow_http=env.flag("WEBHOOK_ALLOW_HTTP", False),
            allow_private=env.flag("WEBHOOK_ALLOW_PRIVATE", False),
            secrets=secrets,
            timeout_seconds=timeout,
            prefetch=env.integer("WEBHOOK_PREFETCH", 256, minimum=1),
            ca_file=None if ca_file is None else Path(ca_file),
        )


def _webhook_secrets(raw: str | None) -> tuple[bytes, ...]:
    """Space-separated ``whsec_<base64>`` secrets (Standard Webhooks' form), decoded."""
    if raw is None:
        return ()
    keys = []
    for secret in raw.split():
        if not secret.startswith(WEBHOOK_SECRET_PREFIX):
            raise SettingsError("WEBHOOK_SECRET", f"secrets must start with {WEBHOOK_SECRET_PREFIX}")
        try:
            key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except binascii.Error:
            raise SettingsError("WEBHOOK_SECRET",
                                f"must be {WEBHOOK_SECRET_PREFIX} followed by base64") from None
        if len(key) < MIN_WEBHOOK_SECRET_BYTES:
            raise SettingsError("WEBHOOK_SECRET",
                                f"keys must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes long")
        keys.append(key)
    return tuple(keys)


# Sanic answers 503 to a handler that runs past RESPONSE_TIMEOUT (60 s by default): a long-poll
# must end well before it.
MAX_STATUS_WAIT_SECONDS = 50.0


@dataclass(frozen=True, slots=True)
class CompletionSettings:
    """Service B's completion notices without polling: long-poll and Server-Sent Events."""

    max_wait_seconds: float  # STATUS_MAX_WAIT_SECONDS: the cap on ?wait=
    max_waiters: int  # API_MAX_WAITERS: long-polls and event streams held per process
    keepalive_seconds: float  # SSE_KEEPALIVE_SECONDS: a comment this often on a quiet stream
    max_stream_seconds: float  # SSE_MAX_STREAM_SECONDS: a stream then ends (clients resume)

    @classmethod
    def from_env(cls, env: Environment) -> CompletionSettings:
        max_wait = env.number("STATUS_MAX_WAIT_SECONDS", 25.0, minimum=0.0)
        if max_wait > MAX_STATUS_WAIT_SECONDS:
            raise SettingsError("STATUS_MAX_WAIT_SECONDS",
                                f"must be at most {MAX_STATUS_WAIT_SECONDS:.0f}, got {max_wait}")
        keepalive = env.number("SSE_KEEPALIVE_SECONDS", 15.0, minimum=0.1)
        if keepalive > MAX_STATUS_WAIT_SECONDS:
            raise SettingsError("SSE_KEEPALIVE_SECONDS",
                                f"must be at most {MAX_STATUS_WAIT_SECONDS:.0f}, got {keepalive}")
        return cls(
            max_wait_seconds=max_wait,
            max_waiters=env.integer("API_MAX_WAITERS", 10_000, minimum=1),
            keepalive_seconds=keepalive,
            max_stream_seconds=env.number("SSE_MAX_STREAM_SECONDS", 3600.0, minimum=1.0),
        )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Service B."""

    host: str
    port: int
    workers: int
    backlog: int
    max_body_bytes: int
    max_in_flight: int
    tokens: frozenset[str]
    results_prefetch: int
    equipment_concurrency: EquipmentConcurrency
    log_level: str
    metrics: MetricsSettings
    redis: RedisSettings
    broker: BrokerSettings
    tls: TlsSettings
    idempotency: IdempotencySettings
    completion: CompletionSettings
    webhooks: WebhookSettings
    history_limit: int = 100  # EQUIPMENT_HISTORY_LIMIT: tasks kept per device, newest
    max_waiting: int = 100  # EQUIPMENT_MAX_WAITING: serialize mode, tasks waiting per device
    # API_MAX_TIMEOUT_SECONDS, API_MAX_INTERFACES, API_MAX_INTERFACE_NUMBER,
    # API_MAX_CREDENTIAL_LENGTH: the bounds of a create's body (400 past them).
    request_limits: RequestLimits = DEFAULT_LIMITS
    # API_REQUIRE_JSON_CONTENT_TYPE: a create not sent as application/json is a 415.
    require_json_content_type: bool = False
    # HTTP_*: the bounds of this server's connections and requests (HttpServerSettings).
    http: HttpServerSettings = DEFAULT_HTTP_SERVER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = Environment(os.environ if environ is None else environ)
        return cls(
            host=env.text("API_HOST", "127.0.0.1"),
            port=env.integer("API_PORT", 8081, minimum=1),
            workers=env.integer("API_WORKERS", 1, minimum=1),
            backlog=env.integer("API_BACKLOG", 4096, minimum=1),
            max_body_bytes=env.integer("API_MAX_BODY_BYTES", 64 * 1024, minimum=256),
            max_in_flight=env.integer("API_MAX_IN_FLIGHT", 2000, minimum=1),
            tokens=env.words("API_TOKENS"),
            results_prefetch=env.integer("RESULTS_PREFETCH", 256, minimum=1),
            equipment_concurrency=EquipmentConcurrency.from_env(env),
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            metrics=MetricsSettings.from_env(env, "API_METRICS_PORT", 9110),
            redis=RedisSettings.from_env(env),
            broker=BrokerSettings.from_env(env),
            tls=TlsSettings.from_env(env),
            idempotency=IdempotencySettings.from_env(env),
            completion=CompletionSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env, signing=False),
            history_limit=env.integer("EQUIPMENT_HISTORY_LIMIT", 100, minimum=1),
            max_waiting=env.integer("EQUIPMENT_MAX_WAITING", 100, minimum=1),
            request_limits=_request_limits(env),
            require_json_content_type=env.flag("API_REQUIRE_JSON_CONTENT_TYPE", False),
            http=HttpServerSettings.from_env(env),
        )


def _request_limits(env: Environment) -> RequestLimits:
    default = DEFAULT_LIMITS
    return RequestLimits(
        max_timeout_seconds=env.integer("API_MAX_TIMEOUT_SECONDS", default.max_timeout_seconds,
                                        minimum=1),
        max_interfaces=env.integer("API_MAX_INTERFACES", default.max_interfaces, minimum=1),
        max_interface_number=env.integer("API_MAX_INTERFACE_NUMBER",
                                         default.max_interface_number, minimum=1),
        max_credential_length=env.integer("API_MAX_CREDENTIAL_LENGTH",
                                          default.max_credential_length, minimum=1),
    )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The worker pool: each process holds up to ``prefetch`` tasks in flight."""

    processes: int
    prefetch: int
    service_a_url: str
    service_a_timeout_seconds: float
    service_a_attempts: int
    backoff_initial_seconds: float
    backoff_max_seconds: float
    service_a_max_connections: int
    shutdown_grace_seconds: float
    equipment_concurrency: EquipmentConcurrency
    log_level: str
    metrics: MetricsSettings
    redis: RedisSettings
    broker: BrokerSettings
    tls: TlsSettings
    webhooks: WebhookSettings
    # reject mode: a device's lease outlasts a call by this much (see equipment_lease).
    equipment_lease_margin_seconds: float = 5.0
    confirm_timeout_seconds: float = DEFAULT_WORKER_CONFIRM_TIMEOUT_SECONDS

    @property
    def own_broker(self) -> BrokerSettings:
        """The settings of the pool's own RabbitMQ connection: ``broker`` with the confirm
        timeout of a publish made while a task is held (``confirm_timeout_seconds``).
        ``broker.publish_timeout_seconds`` stays Service B's, which a serialize-mode turn's
        arrival window is measured in."""
        return replace(self.broker, publish_timeout_seconds=self.confirm_timeout_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = Environment(os.environ if environ is None else environ)
        url = env.text("SERVICE_A_URL", "https://127.0.0.1:8080").rstrip("/")
        if not url.startswith("https://"):
            raise SettingsError("SERVICE_A_URL", f"must be an https:// URL, got {url!r}")
        return cls(
            processes=env.integer("WORKER_PROCESSES", 2, minimum=1),
            prefetch=env.integer("WORKER_PREFETCH", DEFAULT_WORKER_PREFETCH, minimum=1),
            service_a_url=url,
            service_a_timeout_seconds=env.number("SERVICE_A_TIMEOUT_SECONDS", 90.0, minimum=0.1),
            service_a_attempts=env.integer("SERVICE_A_ATTEMPTS", 3, minimum=1),
            backoff_initial_seconds=env.number("SERVICE_A_BACKOFF_SECONDS", 1.0, minimum=0.0),
            backoff_max_seconds=env.number("SERVICE_A_BACKOFF_MAX_SECONDS", 30.0, minimum=0.0),
            service_a_max_connections=env.integer("SERVICE_A_MAX_CONNECTIONS", 0),
            shutdown_grace_seconds=env.number("WORKER_SHUTDOWN_GRACE_SECONDS", 30.0),
            equipment_concurrency=EquipmentConcurrency.from_env(env),
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            metrics=MetricsSettings.from_env(env, "WORKER_METRICS_PORT", 9120),
            redis=RedisSettings.from_env(env),
            broker=BrokerSettings.from_env(env),
            tls=TlsSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env, signing=True),
            equipment_lease_margin_seconds=env.number(
                "EQUIPMENT_LEASE_MARGIN_SECONDS", 5.0, minimum=0.0),
            confirm_timeout_seconds=_bounded_number(
                env, "WORKER_CONFIRM_TIMEOUT_SECONDS", DEFAULT_WORKER_CONFIRM_TIMEOUT_SECONDS,
                WORKER_CONFIRM_TIMEOUT_BOUNDS),
        )
