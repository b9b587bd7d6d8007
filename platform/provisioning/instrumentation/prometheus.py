"""One Prometheus registry per process, served on its own port, and the HTTP server instruments.

Design (see the README): every process (each Sanic worker of Service B and of the stub, each
process of the worker pool) has its own registry and serves it on its own port, ``base + index``.
prometheus_client's multiprocess mode would merge the counts but supports no exemplars, and
Sanic and the pool start their processes with ``spawn``, so nothing can be shared safely anyway;
one scrape target per process keeps counts exact (Prometheus sums them) and keeps exemplars,
which link a histogram bucket to its trace in Jaeger. Labels are low-cardinality only: never a
task id or an equipment id.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.process_collector import ProcessCollector

from .tracer_provider import current_trace_id

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def start_at_zero(metric: Counter | Histogram, label: str, values: tuple[str, ...]) -> None:
    """Create the series of known label values at 0 when the registry is made: a series that
    first appears at its first event hides that event from rate() and increase(), and so from
    alerts."""
    for value in values:
        metric.labels(**{label: value})


def exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar, when there is a current span."""
    trace_id = current_trace_id()
    return {"trace_id": trace_id} if trace_id else None


HealthCheck = Callable[[], dict[str, bool | str]]
"""A process's checks by name (True holds); a string value only describes (it fails nothing)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not worth a log line each."""


class ProcessMetrics:
    """The registry of one process; subclasses add the instruments of a component.

    Its HTTP server also answers ``GET /health`` for processes with no HTTP server of their
    own (the worker pool's, for probes): 200 ``{"status": "ok", ...}`` when every check of
    ``health`` holds, else 503 ``{"status": "unavailable", ...}`` naming them; without checks,
    200 while the process runs. String values are shown as they are and fail nothing (the
    worker's ``rabbitmqBlocked``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._server: Any = None
        self.health: HealthCheck | None = None  # set once the process has what it checks

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics (and /health) on ``host:port`` in a background thread; port 0
        serves nothing."""
        if port:
            server = make_server(host, port, self._wsgi_app(), ThreadingWSGIServer,
                                 handler_class=_QuietHandler)
            self._server = server
            threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
            log.info("metrics served", extra={"metrics_address": f"http://{host}:{port}/metrics"})

    def _wsgi_app(self) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/health":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            checks = self.health() if self.health is not None else {}
            healthy = all(value for value in checks.values() if isinstance(value, bool))
            body = json.dumps({"status": "ok" if healthy else "unavailable", **checks}).encode()
            start_response("200 OK" if healthy else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return app

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class HttpServerMetrics:
    """Requests answered and their duration, by route pattern, method and status, and the
    connections held and refused: the same names in every HTTP server, so one dashboard query
    reads them all (by ``job``). Status ``499``: the client hung up before its answer."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.requests = Counter(
            "http_server_requests", "HTTP requests answered, by route, method and status",
            ["route", "method", "status"], registry=registry,
        )
        self.duration = Histogram(
            "http_server_request_duration_seconds", "Time to answer an HTTP request",
            ["route", "method", "status"], buckets=buckets, registry=registry,
        )
        self.open_connections = Gauge(
            "http_server_open_connections", "HTTP connections this process holds open",
            registry=registry,
        )
        self.refused_connections = Counter(
            "http_server_refused_connections",
            "HTTP connections refused (503) because this process held HTTP_MAX_CONNECTIONS",
            registry=registry,
        )
