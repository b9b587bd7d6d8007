"""A server span and HTTP metrics for every request of a Sanic app (Service B and the stub).

A small middleware pair rather than a third-party Sanic instrumentation: none is maintained
for current Sanic. The server span continues the caller's W3C context (the worker's aiohttp
client span when the stub is called), is named ``{method} {route}``, and is current while the
handler runs, so spans opened by the handler (publish, Redis) are its children. Each app passes
its own tracer, so its spans carry its own instrumentation scope.

Every label and attribute is bounded, whatever a client sends (OpenTelemetry's HTTP semantic
conventions): a method outside RFC 9110's nine is ``_OTHER`` (the span is then named ``HTTP``)
and is recorded nowhere, not even as ``http.request.method_original`` (a method is any token a
client likes, a secret as well); a route is its pattern or ``unmatched``. A request whose client
hung up before its answer could be sent is counted with status ``499`` (nginx's "client closed
request"), not as the 500 Sanic makes of it: a hang-up is not a server error, and ``499`` stays
out of every ``5..`` alert. Its span gets no status code.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from .prometheus import HttpServerMetrics, exemplar

UNMATCHED_ROUTE = "unmatched"
# RFC 9110's methods (and PATCH, RFC 5789): OpenTelemetry's "known" methods; the rest are _OTHER.
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT",
                           "TRACE"})
OTHER_METHOD = "_OTHER"
CLIENT_CLOSED = 499  # nginx's status for a request whose client closed the connection first
METRICS_CONFIG_KEY = "HTTP_SERVER_METRICS"  # where the app keeps its HttpServerMetrics


def method_label(method: str) -> str:
    """The method as a label: one of ``KNOWN_METHODS`` (case-sensitive, as methods are), else
    ``_OTHER``. Sanic's placeholder for a request it could not parse (``NONE``) is ``_OTHER``."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def client_closed(request: Request[Any, Any]) -> bool:
    """The connection is gone before the answer: whatever is answered now reaches nobody. (The
    placeholder request Sanic makes for a head it never got in full has no ``conn_info``.)"""
    info = request.conn_info
    if info is not None and info.lost:
        return True
    transport = request.transport
    return transport is None or transport.is_closing()


def span_name(method: str, route: str) -> str:
    """``{method} {route}``; the semantic conventions' ``HTTP`` for an unknown method."""
    shown = "HTTP" if method == OTHER_METHOD else method
    return f"{shown} {route}"


def route_template(request: Request[Any, Any]) -> str:
    """``/api/v1/equipment/cpe/<equipment_id>``: the route's pattern, never the ids in it."""
    route = request.route
    if route is None:
        return UNMATCHED_ROUTE
    template = _TEMPLATES.get(route.path)
    if template is None:
        template = _TEMPLATES[route.path] = _template(route.path)
    return template


# By route path: as many as the apps have routes.
_TEMPLATES: dict[str, str] = {}


def _template(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if part.startswith("<") and ":" in part:
            part = part.split(":", 1)[0] + ">"
        parts.append(part)
    return "/" + "/".join(parts)


def instrument_sanic(app: Sanic[Any, Any], metrics: HttpServerMetrics, tracer: Tracer) -> None:
    """Open a SERVER span from ``tracer`` around every request and count it in ``metrics``
    (kept in the app's config too, for the connection counts of ``provisioning.http_protocol``)."""
    app.config[METRICS_CONFIG_KEY] = metrics
    # Each (route, method, status)'s two series, looked up once: prometheus_client's labels()
    # costs more than the increment. Bounded as the labels are (routes, methods, statuses).
    children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def start_server_span(request: Request[Any, Any]) -> None:
        route = route_template(request)
        method = method_label(request.method)
        span = tracer.start_span(
            span_name(method, route),
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": request.path,
                "url.scheme": request.scheme,
                "server.port": request.server_port,
            },
        )
        request.ctx.span = span
        request.ctx.span_token = context.attach(trace.set_span_in_context(span))
        request.ctx.started = time.perf_counter()

    async def end_server_span(request: Request[Any, Any], response: BaseHTTPResponse) -> None:
        route = route_template(request)
        hung_up = client_closed(request)
        status = str(CLIENT_CLOSED if hung_up else response.status)
        started = getattr(request.ctx, "started", None)
        span = getattr(request.ctx, "span", None)
        labels = (route, method_label(request.method), status)
        series = children.get(labels)
        if series is None:
            series = children[labels] = (metrics.requests.labels(*labels),
                                         metrics.duration.labels(*labels))
        series[0].inc()
        if started is not None:
            series[1].observe(time.perf_counter() - started, exemplar=exemplar())
        if span is not None:
            if not hung_up:
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            context.detach(request.ctx.span_token)
            request.ctx.span = None

    # First in, last out: the span covers every other middleware and the handler.
    app.register_middleware(start_server_span, "request", priority=1000)
    app.register_middleware(end_server_span, "response", priority=-1000)
