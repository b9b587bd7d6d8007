"""The stub's traces: its own tracer provider (``service-a-stub``) and a span per request.

Each request's server span continues the caller's W3C context (``traceparent``), so the stub's
span is a child of the worker's HTTP client span and one task stays one trace.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sanic import Sanic

from provisioning.instrumentation.prometheus import HttpServerMetrics
from provisioning.instrumentation.sanic_http import instrument_sanic
from provisioning.instrumentation.tracer_provider import install_tracer_provider, shutdown_tracer_provider

SERVICE_NAME = "service-a-stub"
INSTRUMENTATION = "equipment_stub"
# The project's attribute for a device, on the stub's span too: one Jaeger search finds them all.
EQUIPMENT_ID_ATTRIBUTE = "provisioning.equipment.id"


def start_tracing() -> TracerProvider | None:
    """Install this process's tracer provider when the OTLP variables ask for one."""
    return install_tracer_provider(SERVICE_NAME)


def stop_tracing(provider: TracerProvider | None) -> None:
    shutdown_tracer_provider(provider)


def instrument(app: Sanic[Any, Any], metrics: HttpServerMetrics) -> None:
    """A server span (from the stub's own tracer) and the HTTP metrics for every request."""
    instrument_sanic(app, metrics, trace.get_tracer(INSTRUMENTATION))


def mark_equipment(equipment_id: str) -> None:
    """Name the equipment on the current (server) span."""
    trace.get_current_span().set_attribute(EQUIPMENT_ID_ATTRIBUTE, equipment_id)
