"""Observability of Service B and the worker pool: OpenTelemetry traces, Prometheus metrics.

Built on the neutral ``provisioning.instrumentation`` (which the Service A stub uses as well);
what is here is the platform's own.

    tracing.py   the platform's tracer provider setup (plus Redis instrumentation), tracer, attributes
    amqp.py      W3C trace context in and out of AMQP headers, messaging spans
    http.py      Service B's server spans and HTTP metrics for every route
    metrics.py   every Prometheus instrument of Service B and the worker pool
"""
