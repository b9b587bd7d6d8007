"""A server span and HTTP metrics for every request of a Sanic app (Service B and the stub).

A small middleware pair rather than a third-party Sanic instrumentation: none is maintained
for current Sanic. The server span continues the caller's W3C context (the worker's aiohttp
client span when the stub is called), is named ``{method} {route}``, and is current while the
handler runs, so spans opened by the handler (publish, Redis) are its children. Each app passes
its own tracer, so its spans carry its own instrumentation scope.
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


def route_template(request: Request[Any, Any]) -> str:
    """``/api/v1/equipment/cpe/<equipment_id>``: the route's pattern, never the ids in it."""
    route = request.route
    if route is None:
        return UNMATCHED_ROUTE
    parts = []
    for part in route.path.split("/"):
        if part.startswith("<") and ":" in part:
            part = part.split(":", 1)[0] + ">"
        parts.append(part)
    return "/" + "/".join(parts)


def instrument_sanic(app: Sanic[Any, Any], metrics: HttpServerMetrics, tracer: Tracer) -> None:
    """Open a SERVER span from ``tracer`` around every request and count it in ``metrics``."""

    async def start_server_span(request: Request[Any, Any]) -> None:
        route = route_template(request)
        span = tracer.start_span(
            f"{request.method} {route}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
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
        status = str(response.status)
        started = getattr(request.ctx, "started", None)
        span = getattr(request.ctx, "span", None)
        labels = {"route": route, "method": request.method, "status": status}
        metrics.requests.labels(**labels).inc()
        if started is not None:
            metrics.duration.labels(**labels).observe(
                time.perf_counter() - started, exemplar=exemplar()
            )
        if span is not None:
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            context.detach(request.ctx.span_token)
            request.ctx.span = None

    # First in, last out: the span covers every other middleware and the handler.
    app.register_middleware(start_server_span, "request", priority=1000)
    app.register_middleware(end_server_span, "response", priority=-1000)
