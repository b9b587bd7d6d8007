"""Generic OpenTelemetry and Prometheus plumbing, for any process of this project.

Neutral on purpose: nothing here imports Service B's code (its API, telemetry, models or
errors), so the Service A stub, which stands in for an external system, builds its own traces
and metrics on it without taking B's. What is B's and the worker's lives in ``telemetry``.

    tracer_provider.py   a process's tracer provider, exporting over OTLP when an endpoint is set
    prometheus.py        one registry and /metrics endpoint per process, exemplars, HTTP instruments
    sanic_http.py        a server span and HTTP metrics for every request of a Sanic app
"""
