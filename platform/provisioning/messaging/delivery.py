"""One delivered message and the only three things a consumer may do with it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiormq.abc

from ..telemetry.metrics import BrokerMetrics
from .connection_errors import CONNECTION_ERRORS

log = logging.getLogger(__name__)


class Delivery:
    """A message held by this consumer until it is acked, requeued or dead-lettered."""

    __slots__ = ("_message", "_metrics", "queue", "settled")

    def __init__(
        self, message: aiormq.abc.DeliveredMessage, queue: str, metrics: BrokerMetrics | None = None
    ) -> None:
        self._message = message
        self._metrics = metrics
        self.queue = queue
        self.settled = False

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def headers(self) -> Mapping[str, Any]:
        return self._message.header.properties.headers or {}

    @property
    def message_id(self) -> str | None:
        return self._message.header.properties.message_id

    @property
    def redelivered(self) -> bool:
        return bool(getattr(self._message.delivery, "redelivered", False))

    @property
    def deliverable(self) -> bool:
        """False once the channel it came on is closed: the broker redelivers it then."""
        return not self.settled and not self._message.channel.is_closed

    @property
    def delivery_tag(self) -> int:
        return int(getattr(self._message.delivery, "delivery_tag", None) or 0)

    async def ack(self) -> None:
        await self._settle(self._message.channel.basic_ack(self.delivery_tag))

    async def requeue(self) -> None:
        await self._settle(self._message.channel.basic_nack(self.delivery_tag, requeue=True))

    async def dead_letter(self, reason: str) -> None:
        """Reject to the queue's dead-letter queue; ``reason`` is a low-cardinality label."""
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(queue=self.queue, reason=reason).inc()
        await self._settle(self._message.channel.basic_reject(self.delivery_tag, requeue=False))

    async def _settle(self, operation: Awaitable[Any]) -> None:
        self.settled = True
        try:
            await operation
        except CONNECTION_ERRORS as error:
            # The channel is gone, so the broker requeues the message by itself.
            log.warning("could not settle a delivery, the broker will redeliver it: %s", error)


MessageHandler = Callable[[Delivery], Awaitable[None]]
"""A queue's consumer: it decides each delivery's fate (see ``inbound`` for what it need not)."""
