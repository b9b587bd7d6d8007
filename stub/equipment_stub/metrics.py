"""The stub's Prometheus instruments: its answers, the requests it holds, its HTTP metrics, and
the calls for one equipment id that overlapped.

The names and labels are read by the "Service A stub" dashboard, the alert rules and the fault
tests (``equipment_stub_*``, and ``http_server_*`` under ``job="stub"``): keep them as they are.
Every label takes its values from a fixed set, never from a request: ``answer`` is one of
``ANSWER_KINDS``; ``route``, ``method`` and ``status`` are bounded by the shared HTTP
instrumentation (a route's pattern, never its ids). Equipment ids appear only on spans.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from provisioning.instrumentation.prometheus import HttpServerMetrics, ProcessMetrics, start_at_zero

from .behaviour import Answer

# Its answers take as long as its configured delay, 60 s by default: the buckets sit around it.
ANSWER_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 45, 55, 60, 61, 62, 65, 70, 90, 120)
INVALID = "invalid"  # refused at once: a malformed id or body
ABANDONED = "abandoned"  # the client hung up before its answer (a killed worker, a timeout)
ANSWER_KINDS = (*(answer.name.lower() for answer in Answer), INVALID, ABANDONED)


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
        self.overlapping_calls = Counter(
            "equipment_stub_overlapping_calls",
            "Configuration calls that started while another call for the same equipment id was "
            "still being worked on (by this process)", registry=self.registry,
        )


class CallsInProgress:
    """The configuration calls this process is working on, per equipment id, counting each
    call that starts while another one for the same id is in progress: the fault tests' proof
    that no two calls for one device ever overlap. Holds an entry only while a call for its id
    is in progress, so it is bounded by the requests in progress."""

    def __init__(self, overlapping: Counter) -> None:
        self._overlapping = overlapping
        self._calls: dict[str, int] = {}

    def begin(self, equipment_id: str) -> None:
        if self._calls.get(equipment_id, 0):
            self._overlapping.inc()
        self._calls[equipment_id] = self._calls.get(equipment_id, 0) + 1

    def end(self, equipment_id: str) -> None:
        left = self._calls.pop(equipment_id, 1) - 1
        if left:
            self._calls[equipment_id] = left
