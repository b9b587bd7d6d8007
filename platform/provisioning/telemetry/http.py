"""Service B's server spans and HTTP metrics: the neutral Sanic middleware, with this
package's tracer (see ``provisioning.instrumentation.sanic_http``)."""

from __future__ import annotations

from typing import Any

from sanic import Sanic

from ..instrumentation.prometheus import HttpServerMetrics
from ..instrumentation.sanic_http import UNMATCHED_ROUTE, instrument_sanic, route_template
from .tracing import tracer

__all__ = ["UNMATCHED_ROUTE", "instrument_http", "route_template"]


def instrument_http(app: Sanic[Any, Any], metrics: HttpServerMetrics) -> None:
    """A server span (from the platform's tracer) and the HTTP metrics for every request."""
    instrument_sanic(app, metrics, tracer())
