"""Every Prometheus instrument of Service B and the worker pool.

Each process has its own registry and /metrics port (``provisioning.instrumentation.prometheus``
says why); the classes here add the platform's instruments to it. Labels are low-cardinality
only: never a task id or an equipment id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..instrumentation.prometheus import (
    LATENCY_BUCKETS,
    HttpServerMetrics,
    ProcessMetrics,
    exemplar,
    start_at_zero,
)

__all__ = ["ApiMetrics", "BrokerMetrics", "CompletionMetrics", "TurnMetrics", "WebhookMetrics",
           "WorkerMetrics", "exemplar"]

CALL_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 45, 55, 60, 61, 62, 65, 70, 90, 120)
TASK_BUCKETS = (0.5, 1, 5, 10, 30, 60, 61, 62, 65, 70, 90, 120, 180, 300, 600, 1800)
# Up to a whole lease: SERVICE_A_TIMEOUT_SECONDS (90) + EQUIPMENT_LEASE_MARGIN_SECONDS (5).
LEASE_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 90, 95, 120)
# Serialize mode: a device's waiting tasks, up to EQUIPMENT_MAX_WAITING (100 by default).
WAITING_DEPTH_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)
# A waiting task waits about one Service A call (60 s) per task ahead of it.
TURN_WAIT_BUCKETS = (0.1, 1, 5, 10, 30, 60, 61, 65, 90, 120, 180, 300, 600, 1800, 3600, 6000)


# Known label values, created at 0 when a registry is made: a series that first appears at its
# first event hides that event from rate() and increase(), and so from alerts.
DEAD_LETTER_REASONS = ("malformed", "unknown_task", "too_large")
FAILURE_REASONS = ("equipment_not_found", "rejected_by_service_a", "service_a_unavailable", "not_queued")
RESULT_OUTCOMES = ("applied", "duplicate", "unknown_task", "malformed")
WORKER_OUTCOMES = ("completed", "failed", "already_final", "cancelled", "dead_lettered", "handed_back")
SERVICE_A_OUTCOMES = ("success", "not_found", "rejected", "error")
CANCEL_OUTCOMES = ("cancelled", "requested", "final", "missing")
IDEMPOTENCY_OUTCOMES = ("created", "replayed", "in_progress", "mismatch", "released")
LONG_POLL_OUTCOMES = ("final", "timeout")
WEBHOOK_OUTCOMES = ("delivered", "retried", "gone", "dead_lettered")
WEBHOOK_ATTEMPT_RESULTS = ("2xx", "3xx", "410", "429", "4xx", "5xx", "timeout", "connection_error",
                           "address_refused")
WEBHOOK_DEAD_LETTER_REASONS = ("schedule_exhausted", "permanent_status", "redirect",
                               "address_refused", "not_allowed", "malformed")
# From a task's final status to its receiver's 2xx: mostly the first attempt, then the retries.
WEBHOOK_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


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
        self.blocked = Gauge(
            "provisioning_amqp_blocked",
            "1 while RabbitMQ blocks this process's publishing (a memory or disk alarm)",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "provisioning_messages_dead_lettered", "Messages rejected to the dead-letter queue",
            ["queue", "reason"], registry=registry,
        )

    def watch_queue(self, queue: str) -> None:
        """Start the queue's dead-letter series at 0, so the first one shows as an increase."""
        for reason in DEAD_LETTER_REASONS:
            self.dead_lettered.labels(queue=queue, reason=reason)


class TurnMetrics:
    """Serialize mode: hand-overs of a device's turn to its next waiting task. Service B and
    the worker both hand over (``provisioning.serialization``), each under its own prefix."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.handed_over = Counter(
            f"{prefix}_equipment_handed_over",
            "Waiting tasks given their device's turn and moved to the tasks queue (serialize mode)",
            registry=registry,
        )
        self.wait = Histogram(
            f"{prefix}_equipment_wait_seconds",
            "Time from a waiting task's creation to its hand-over to the tasks queue (serialize mode)",
            buckets=TURN_WAIT_BUCKETS, registry=registry,
        )
        self.not_queued = Counter(
            f"{prefix}_equipment_parked_lost",
            "Waiting tasks whose message never reached their parking queue (their create answered "
            "500): failed not_queued at their turn (serialize mode)", registry=registry,
        )


class CompletionMetrics:
    """Service B's completion notices without polling: long-polls, event streams, and the one
    Redis subscription per process that wakes them (``api.waiters``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.long_polls = Gauge(
            "provisioning_api_long_poll_waiters",
            "Status reads with ?wait= waiting for their task to end", registry=registry,
        )
        self.long_poll_answers = Counter(
            "provisioning_api_long_poll_answers",
            "Status reads with ?wait= answered, by outcome (final: the task ended; timeout: the "
            "wait ran out and the answer is the current status)", ["outcome"], registry=registry,
        )
        start_at_zero(self.long_poll_answers, "outcome", LONG_POLL_OUTCOMES)
        self.streams = Gauge(
            "provisioning_api_event_streams", "Server-Sent Events streams open", registry=registry,
        )
        self.refused = Counter(
            "provisioning_api_waiters_refused",
            "Long-polls and event streams refused with 503: API_MAX_WAITERS were held",
            registry=registry,
        )
        self.notices = Counter(
            "provisioning_api_event_notices",
            "Task event notices received by this process's subscription", registry=registry,
        )
        self.subscribed = Gauge(
            "provisioning_api_event_subscription_up",
            "1 while this process's Redis subscription to task events is up", registry=registry,
        )
        self.webhooks_queued = Counter(
            "provisioning_api_webhooks_queued",
            "Webhooks of final tasks put on the webhooks queue", registry=registry,
        )


class WebhookMetrics:
    """The webhook deliveries of a worker pool process (``provisioning.webhooks``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "provisioning_webhook_deliveries",
            "Webhook delivery attempts ended, by what followed (delivered: a 2xx; retried: "
            "scheduled again; gone: the receiver answered 410; dead_lettered)", ["outcome"],
            registry=registry,
        )
        start_at_zero(self.deliveries, "outcome", WEBHOOK_OUTCOMES)
        self.attempts = Counter(
            "provisioning_webhook_attempts",
            "Webhook HTTP attempts, by result (status class, timeout, connection_error, "
            "address_refused)", ["result"], registry=registry,
        )
        start_at_zero(self.attempts, "result", WEBHOOK_ATTEMPT_RESULTS)
        self.latency = Histogram(
            "provisioning_webhook_delivery_latency_seconds",
            "Time from a task's final status to its receiver's 2xx",
            buckets=WEBHOOK_LATENCY_BUCKETS, registry=registry,
        )
        self.dead_lettered = Counter(
            "provisioning_webhooks_dead_lettered",
            "Webhooks given up and dead-lettered, by reason", ["reason"], registry=registry,
        )
        start_at_zero(self.dead_lettered, "reason", WEBHOOK_DEAD_LETTER_REASONS)
        self.in_flight = Gauge(
            "provisioning_webhook_deliveries_in_flight",
            "Webhook deliveries this process holds", registry=registry,
        )


class ApiMetrics(ProcessMetrics):
    """Service B: HTTP, broker, and the tasks' lifecycle."""

    def __init__(self) -> None:
        super().__init__()
        self.http = HttpServerMetrics(self.registry)
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
        self.idempotency = Counter(
            "provisioning_api_idempotency",
            "Creates with an Idempotency-Key, by outcome (created, replayed, in_progress, "
            "mismatch, released)", ["outcome"], registry=self.registry,
        )
        start_at_zero(self.idempotency, "outcome", IDEMPOTENCY_OUTCOMES)
        self.cancellations = Counter(
            "provisioning_api_cancellations",
            "DELETE of a task, by outcome (cancelled: it was pending; requested: it was running; "
            "final: nothing to cancel; missing: 404)", ["outcome"], registry=self.registry,
        )
        start_at_zero(self.cancellations, "outcome", CANCEL_OUTCOMES)
        self.equipment_busy = Counter(
            "provisioning_api_equipment_busy",
            "Creates refused with 409 because the device has an unfinished task (reject mode) "
            "or its limit of tasks waiting (serialize mode)",
            registry=self.registry,
        )
        self.equipment_parked = Counter(
            "provisioning_api_equipment_parked",
            "Creates whose task waits for its device's turn in a parking queue (serialize mode)",
            registry=self.registry,
        )
        self.equipment_waiting_depth = Histogram(
            "provisioning_api_equipment_waiting_depth",
            "Tasks waiting for their device's turn, counted at each park (serialize mode)",
            buckets=WAITING_DEPTH_BUCKETS, registry=self.registry,
        )
        self.turns = TurnMetrics(self.registry, "provisioning_api")
        self.completion = CompletionMetrics(self.registry)
        start_at_zero(self.tasks_failed, "reason", FAILURE_REASONS)
        start_at_zero(self.results, "outcome", RESULT_OUTCOMES)


class WorkerMetrics(ProcessMetrics):
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
        start_at_zero(self.tasks, "outcome", WORKER_OUTCOMES)
        start_at_zero(self.service_a_duration, "outcome", SERVICE_A_OUTCOMES)
        # EQUIPMENT_CONCURRENCY=reject: each Service A attempt first takes its device's lease.
        self.equipment_lease_wait = Histogram(
            "provisioning_worker_equipment_lease_wait_seconds",
            "Time a Service A attempt waited for its device's lease (0 when it was free)",
            buckets=LEASE_WAIT_BUCKETS, registry=self.registry,
        )
        self.equipment_lease_waits = Counter(
            "provisioning_worker_equipment_lease_waits",
            "Service A attempts that found their device's lease held and waited for it",
            registry=self.registry,
        )
        self.turns = TurnMetrics(self.registry, "provisioning_worker")
        self.webhooks = WebhookMetrics(self.registry)
