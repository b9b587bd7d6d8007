"""The stub's Prometheus instruments: its answers, the requests it holds, its HTTP metrics.

The names and labels are read by the "Service A stub" dashboard, the alert rules and the fault
tests (``equipment_stub_*``, and ``http_server_*`` under ``job="stub"``): keep them as they are.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from provisioning.instrumentation.prometheus import HttpServerMetrics, ProcessMetrics, start_at_zero

from .behaviour import Answer

# Its answers take as long as its configured delay, 60 s by default: the buckets sit around it.
ANSWER_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 45, 55, 60, 61, 62, 65, 70, 90, 120)
INVALID = "invalid"  # refused at once: a malformed id or body
ANSWER_KINDS = (*(answer.name.lower() for answer in Answer), INVALID)


class StubMetrics(ProcessMetrics):
    """The registry of one stub process."""

    def __init__(self) -> None:
        super().__init__()
        self.http = HttpServerMetrics(self.registry, buckets=ANSWER_BUCKETS)
        self.in_progress = Gauge(
            "equipment_stub_requests_in_progress", "Configuration requests being answered",
            registry=self.registry,
        )
        self.answers = Counter(
            "equipment_stub_answers", "Configuration answers, by kind", ["answer"],
            registry=self.registry,
        )
        start_at_zero(self.answers, "answer", ANSWER_KINDS)
