"""Observability: OpenTelemetry traces, Prometheus metrics, and the glue between them.

    tracing.py   the tracer provider of a process (OTLP export), Redis instrumentation
    amqp.py      W3C trace context in and out of AMQP headers, messaging spans
    http.py      Sanic server spans and HTTP metrics for every route
    metrics.py   every Prometheus instrument, one registry and /metrics endpoint per process
"""
