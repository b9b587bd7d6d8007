"""Every Prometheus instrument of the platform, and the /metrics endpoint of a process.

Design (see the README): every process (each Sanic worker of Service B and of the stub, each
process of the worker pool) has its own registry and serves it on its own port, ``base + index``.
prometheus_client's multiprocess mode would merge the counts but supports no exemplars, and
Sanic and the pool start their processes with ``spawn``, so nothing can be shared safely anyway;
one scrape target per process keeps counts exact (Prometheus sums them) and keeps exemplars,
which link a histogram bucket to its trace in Jaeger. Labels are low-cardinality only: never a
task id or an equipment id.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.process_collector import ProcessCollector

from .tracing import current_trace_id

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 45, 55, 60, 61, 62, 65, 70, 90, 120)
TASK_BUCKETS = (0.5, 1, 5, 10, 30, 60, 61, 62, 65, 70, 90, 120, 180, 300, 600, 1800)


# Known label values, created at 0 when a registry is made: a series that first appears at its
# first event hides that event from rate() and increase(), and so from alerts.
DEAD_LETTER_REASONS = ("malformed", "unknown_task", "too_large")
FAILURE_REASONS = ("equipment_not_found", "rejected_by_service_a", "service_a_unavailable", "not_queued")
RESULT_OUTCOMES = ("applied", "duplicate", "unknown_task", "malformed")
WORKER_OUTCOMES = ("completed", "failed", "already_final", "dead_lettered", "handed_back")
SERVICE_A_OUTCOMES = ("success", "not_found", "rejected", "error")
STUB_ANSWERS = ("success", "unknown_equipment", "failure", "invalid")


def _start_at_zero(metric: Counter | Histogram, label: str, values: tuple[str, ...]) -> None:
    for value in values:
        metric.labels(**{label: value})


def exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar, when there is a current span."""
    trace_id = current_trace_id()
    return {"trace_id": trace_id} if trace_id else None


class Metrics:
    """The registry of one process; subclasses add the instruments of a component."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._server: Any = None

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics on ``host:port`` in a background thread; port 0 serves nothing."""
        if port:
            self._server, _thread = start_http_server(port, host, registry=self.registry)
            log.info("metrics served", extra={"metrics_address": f"http://{host}:{port}/metrics"})

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.requests = Counter(
            "http_server_requests", "HTTP requests answered, by route, method and status",
            ["route", "method", "status"], registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds", "Time to answer an HTTP request",
            ["route", "method", "status"], buckets=buckets, registry=registry,
        )


class BrokerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.publish_confirm = Histogram(
            "provisioning_amqp_publish_confirm_duration_seconds",
            "Time from publishing a message to the broker's confirm", ["queue"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.reconnects = Counter(
            "provisioning_amqp_reconnects", "Reconnections to RabbitMQ after a lost connection",
            registry=registry,
        )
        self.connected = Gauge(
            "provisioning_amqp_connected", "1 while connected to RabbitMQ", registry=registry
        )
        self.dead_lettered = Counter(
            "provisioning_messages_dead_lettered", "Messages rejected to the dead-letter queue",
            ["queue", "reason"], registry=registry,
        )

    def watch_queue(self, queue: str) -> None:
        """Start the queue's dead-letter series at 0, so the first one shows as an increase."""
        for reason in DEAD_LETTER_REASONS:
            self.dead_lettered.labels(queue=queue, reason=reason)


class ApiMetrics(Metrics):
    """Service B: HTTP, broker, and the tasks' lifecycle."""

    def __init__(self) -> None:
        super().__init__()
        self.http = HttpMetrics(self.registry)
        self.broker = BrokerMetrics(self.registry)
        self.tasks_created = Counter(
            "provisioning_tasks_created", "Tasks accepted and queued", registry=self.registry
        )
        self.tasks_completed = Counter(
            "provisioning_tasks_completed", "Tasks that reached completed", registry=self.registry
        )
        self.tasks_failed = Counter(
            "provisioning_tasks_failed", "Tasks that reached failed, by reason", ["reason"],
            registry=self.registry,
        )
        self.task_duration = Histogram(
            "provisioning_task_duration_seconds",
            "Time from a task's creation to its final status being written", ["status"],
            buckets=TASK_BUCKETS, registry=self.registry,
        )
        self.results = Counter(
            "provisioning_results", "Result messages consumed, by what they did", ["outcome"],
            registry=self.registry,
        )
        _start_at_zero(self.tasks_failed, "reason", FAILURE_REASONS)
        _start_at_zero(self.results, "outcome", RESULT_OUTCOMES)


class WorkerMetrics(Metrics):
    """A worker pool process: its tasks in flight, their outcomes, Service A calls."""

    def __init__(self) -> None:
        super().__init__()
        self.broker = BrokerMetrics(self.registry)
        self.in_flight = Gauge(
            "provisioning_worker_tasks_in_flight", "Tasks this process holds", registry=self.registry
        )
        self.tasks = Counter(
            "provisioning_worker_tasks", "Task messages handled, by outcome", ["outcome"],
            registry=self.registry,
        )
        self.service_a_duration = Histogram(
            "provisioning_service_a_request_duration_seconds",
            "One call to Service A, by outcome", ["outcome"], buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.service_a_retries = Counter(
            "provisioning_service_a_retries", "Calls to Service A made again after a transient failure",
            registry=self.registry,
        )
        _start_at_zero(self.tasks, "outcome", WORKER_OUTCOMES)
        _start_at_zero(self.service_a_duration, "outcome", SERVICE_A_OUTCOMES)


class StubMetrics(Metrics):
    """The Service A stub."""

    def __init__(self) -> None:
        super().__init__()
        # Its answers take as long as its configured delay: 60 s by default.
        self.http = HttpMetrics(self.registry, buckets=CALL_BUCKETS)
        self.in_progress = Gauge(
            "equipment_stub_requests_in_progress", "Configuration requests being answered",
            registry=self.registry,
        )
        self.answers = Counter(
            "equipment_stub_answers", "Configuration answers, by kind", ["answer"],
            registry=self.registry,
        )
        _start_at_zero(self.answers, "answer", STUB_ANSWERS)
