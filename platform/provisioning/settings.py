"""One frozen settings object per component, read from the environment and validated once.

Every variable, its default and meaning is listed in ``.env.example`` and the README.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import names
from .environment import Environment
from .errors import SettingsError

DEFAULT_CERT_DIR = "certs"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    key_prefix: str
    task_ttl_seconds: int
    socket_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_env(cls, env: Environment) -> RedisSettings:
        return cls(
            url=env.text("REDIS_URL", "redis://127.0.0.1:6379/0"),
            key_prefix=env.text("REDIS_KEY_PREFIX", names.DEFAULT_KEY_PREFIX),
            task_ttl_seconds=env.integer("TASK_TTL_SECONDS", 86_400, minimum=1),
            socket_timeout_seconds=env.number("REDIS_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            max_connections=env.integer("REDIS_MAX_CONNECTIONS", 64, minimum=1),
        )


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

    @classmethod
    def from_env(cls, env: Environment) -> BrokerSettings:
        tasks_queue = env.text("TASKS_QUEUE", names.DEFAULT_TASKS_QUEUE)
        results_queue = env.text("RESULTS_QUEUE", names.DEFAULT_RESULTS_QUEUE)
        if tasks_queue == results_queue:
            raise SettingsError("RESULTS_QUEUE", "must differ from TASKS_QUEUE")
        return cls(
            url=env.text("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            tasks_queue=tasks_queue,
            results_queue=results_queue,
            delivery_limit=env.integer("QUEUE_DELIVERY_LIMIT", 20, minimum=1),
            dead_letter_ttl_seconds=env.integer("DEAD_LETTER_TTL_SECONDS", 7 * 86_400, minimum=60),
            max_message_bytes=env.integer("MAX_MESSAGE_BYTES", 256 * 1024, minimum=1024),
            publish_timeout_seconds=env.number("PUBLISH_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            reconnect_initial_seconds=env.number("RECONNECT_INITIAL_SECONDS", 0.5, minimum=0.01),
            reconnect_max_seconds=env.number("RECONNECT_MAX_SECONDS", 10.0, minimum=0.01),
        )


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
    history_limit: int = 100  # EQUIPMENT_HISTORY_LIMIT: tasks kept per device, newest
    max_waiting: int = 100  # EQUIPMENT_MAX_WAITING: serialize mode, tasks waiting per device

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
            history_limit=env.integer("EQUIPMENT_HISTORY_LIMIT", 100, minimum=1),
            max_waiting=env.integer("EQUIPMENT_MAX_WAITING", 100, minimum=1),
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
    # reject mode: a device's lease outlasts a call by this much (see equipment_lease).
    equipment_lease_margin_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = Environment(os.environ if environ is None else environ)
        url = env.text("SERVICE_A_URL", "https://127.0.0.1:8080").rstrip("/")
        if not url.startswith("https://"):
            raise SettingsError("SERVICE_A_URL", f"must be an https:// URL, got {url!r}")
        return cls(
            processes=env.integer("WORKER_PROCESSES", 2, minimum=1),
            prefetch=env.integer("WORKER_PREFETCH", 2000, minimum=1),
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
            equipment_lease_margin_seconds=env.number(
                "EQUIPMENT_LEASE_MARGIN_SECONDS", 5.0, minimum=0.0),
        )
