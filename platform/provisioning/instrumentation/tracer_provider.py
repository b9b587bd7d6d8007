"""The tracer provider of one process.

Tracing is on when there is somewhere to send it: an endpoint in the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Without one, or with
``OTEL_SDK_DISABLED=true``, no SDK is installed and the OpenTelemetry API stays a no-op: spans
nobody can look at would cost a third of the platform's CPU (measured, loadtest/RESULTS.md).
Sampling follows the standard ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``. An
unreachable collector costs a warning, never a request: export runs in the batch processor's
thread with bounded queues.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAMESPACE = "cpe-provisioning"
log = logging.getLogger(__name__)


def tracing_disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def otlp_endpoint(environ: Mapping[str, str]) -> str | None:
    return (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def install_tracer_provider(
    service_name: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Install this process's tracer provider, named ``service_name``; None when tracing is off."""
    environ = os.environ if environ is None else environ
    endpoint = otlp_endpoint(environ)
    if tracing_disabled(environ) or not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.namespace": SERVICE_NAMESPACE})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("exporting traces over OTLP", extra={"endpoint": endpoint})
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracer_provider(provider: TracerProvider | None) -> None:
    """Flush what is buffered (bounded by the exporter's timeout) and stop exporting."""
    if provider is not None:
        provider.shutdown()


def current_trace_id() -> str | None:
    """The current span's trace id in hex, for exemplars and logs; None outside a span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
