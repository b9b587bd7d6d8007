"""The inbound policy: what happens to every delivery of a queue around its handler.

    oversized body or header set   -> dead-letter before any decoding ("too_large")
    otherwise                      -> the handler, inside the delivery's process span
    the handler raises (a bug)     -> requeue unless settled; past the delivery limit the
                                      broker dead-letters it, so it is never held for ever
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiormq.abc

from ..telemetry.amqp import process_span
from ..telemetry.metrics import BrokerMetrics
from .delivery import Delivery, MessageHandler

log = logging.getLogger(__name__)

MAX_HEADERS = 32  # ours are the trace context; a message with more is not one of ours


class InboundPolicy:
    """The aiormq consumer callback of one queue; it also knows which deliveries are in flight."""

    def __init__(
        self,
        queue: str,
        handler: MessageHandler,
        *,
        max_message_bytes: int,
        metrics: BrokerMetrics | None = None,
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._max_message_bytes = max_message_bytes
        self._metrics = metrics
        self.in_flight: set[asyncio.Task[Any]] = set()

    async def __call__(self, message: aiormq.abc.DeliveredMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.in_flight.add(task)
        try:
            delivery = Delivery(message, self.queue, self._metrics)
            if self.oversized(delivery):
                log.error("dead-lettering an oversized message", extra={
                    "queue": self.queue, "bytes": len(delivery.body),
                    "headers": len(delivery.headers), "message_id": delivery.message_id})
                await delivery.dead_letter("too_large")
                return
            await self._handle(delivery)
        finally:
            self.in_flight.discard(task)

    def oversized(self, delivery: Delivery) -> bool:
        """Refused before any decoding: a body or header set no producer of ours would send."""
        return len(delivery.body) > self._max_message_bytes or len(delivery.headers) > MAX_HEADERS

    async def _handle(self, delivery: Delivery) -> None:
        try:
            with process_span(self.queue, delivery.headers, delivery.message_id, delivery.delivery_tag):
                await self._handler(delivery)
        except Exception:
            # A handler bug must not hold the message forever: back to the queue it goes,
            # and past the delivery limit to the dead-letter queue.
            log.exception("consumer of %s failed; requeueing the message", self.queue,
                          extra={"message_id": delivery.message_id})
            if not delivery.settled:
                await delivery.requeue()
