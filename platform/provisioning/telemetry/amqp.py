"""W3C trace context through AMQP message headers, and the messaging spans of both sides.

aiormq has no OpenTelemetry instrumentation, so this module is it, used by ``messaging`` for
every publish and every delivery. It follows the messaging semantic conventions for RabbitMQ:
``publish {queue}`` (PRODUCER) injects the context into the message headers; ``process {queue}``
(CONSUMER) extracts it and continues the producer's trace as its child, one message at a time,
so one task is one trace from Service B's POST to the final status write. Messages go through
the default exchange, so the destination is named by the routing key, which is the queue.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind

from .tracing import tracer

SYSTEM = "rabbitmq"


def _attributes(queue: str, operation: str, operation_type: str, message_id: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.operation.type": operation_type,
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


@contextmanager
def publish_span(queue: str, message_id: str, body_size: int) -> Iterator[dict[str, str]]:
    """A PRODUCER span around a publish; yields the headers that carry its context."""
    attributes = _attributes(queue, "publish", "send", message_id)
    attributes["messaging.message.body.size"] = body_size
    with tracer().start_as_current_span(
        f"publish {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield headers


@contextmanager
def process_span(
    queue: str, headers: Mapping[str, Any], message_id: str | None, delivery_tag: int
) -> Iterator[Span]:
    """A CONSUMER span around one message's handling, child of the span that published it."""
    carrier = {key: value for key, value in headers.items() if isinstance(value, str)}
    parent = propagate.extract(carrier)
    attributes = _attributes(queue, "process", "process", message_id)
    attributes["messaging.rabbitmq.message.delivery_tag"] = delivery_tag
    with tracer().start_as_current_span(
        f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
