"""The tracer provider of a Service B or worker process, and the platform's tracer.

The provider itself (OTLP export, only when an endpoint is set) is the neutral
``provisioning.instrumentation.tracer_provider``; this module adds what is the platform's own:
Redis instrumentation, the ``provisioning`` tracer, and the ``provisioning.*`` span attributes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ..instrumentation.tracer_provider import (
    current_trace_id,
    install_tracer_provider,
    shutdown_tracer_provider,
)

__all__ = ["annotate", "current_trace_id", "setup_tracing", "shutdown_tracing", "tracer"]

INSTRUMENTATION = "provisioning"


def setup_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Install this process's tracer provider and instrument Redis; None when disabled."""
    provider = install_tracer_provider(service_name, environ)
    if provider is not None:
        _instrument_redis(provider)
    return provider


def _instrument_redis(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush what is buffered (bounded by the exporter's timeout) and stop exporting."""
    shutdown_tracer_provider(provider)


@functools.cache
def tracer() -> trace.Tracer:
    """The platform's tracer; a proxy until a provider is installed, so caching it is safe."""
    return trace.get_tracer(INSTRUMENTATION)


def annotate(**attributes: str) -> None:
    """Add domain attributes (``provisioning.*``, e.g. the task id) to the current span."""
    span = trace.get_current_span()
    if not span.is_recording():  # tracing off, or a span not sampled: nothing would keep them
        return
    for key, value in attributes.items():
        span.set_attribute(f"provisioning.{key}", value)
