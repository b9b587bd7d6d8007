"""Publishing with publisher confirms: a message counts as sent once the broker acked it.

While RabbitMQ blocks the connection (a resource alarm, ``blocking``) a publish is refused at
once with ``BrokerBlockedRefused`` rather than waiting for a confirm that cannot come before the
alarm clears, and a publish already waiting for its confirm when the block arrives ends at once
with ``BrokerBlocked`` (its fate is unknown, as after a confirm timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiormq.abc
from aiormq import spec

from .. import names
from ..errors import BrokerBlocked, BrokerUnavailable
from ..telemetry.amqp import publish_span
from ..telemetry.metrics import BrokerMetrics, exemplar
from .blocking import Blocking
from .connection_errors import CONNECTION_ERRORS, cancelled_here

PERSISTENT = 2


class ConfirmingPublisher:
    """Publishes persistent messages on one confirm-mode channel of one connection."""

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        *,
        timeout_seconds: float,
        blocking: Blocking | None = None,
        metrics: BrokerMetrics | None = None,
    ) -> None:
        self.channel = channel
        self._timeout_seconds = timeout_seconds
        self._blocking = blocking if blocking is not None else Blocking()
        self._metrics = metrics

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """Publish to ``queue`` through the default exchange; raises ``BrokerUnavailable``
        unless the broker confirmed the message within the timeout (``BrokerBlocked`` while
        the connection is blocked). ``expiration_ms``: the message's own TTL (a webhook retry's
        pause in its delay queue)."""
        if self._blocking.blocked:
            raise self._blocking.refusal(f"publishing: not published to {queue}")
        with publish_span(queue, message_id, len(body)) as trace_headers:
            properties = spec.Basic.Properties(
                delivery_mode=PERSISTENT,
                content_type=names.CONTENT_TYPE_JSON,
                message_id=message_id,
                headers={**trace_headers, **(headers or {})},
                expiration=None if expiration_ms is None else str(expiration_ms),
            )
            started = time.perf_counter()
            blocked = asyncio.timeout(None)  # expires only when a block arrives meanwhile
            try:
                async with blocked:
                    with self._blocking.cut_short(blocked):
                        confirmation = await self.channel.basic_publish(
                            body,
                            routing_key=queue,
                            properties=properties,
                            mandatory=True,
                            timeout=self._timeout_seconds,
                            # The confirm is what counts, not the socket's drain: waited for,
                            # aiormq holds the channel's lock through the drain, so each publish
                            # on the channel waits for the one before it to reach the socket, a
                            # few event-loop turns each, and under load the queue for the lock
                            # outgrew PUBLISH_TIMEOUT_SECONDS (loadtest/RESULTS.md, issue 13).
                            wait=False,  # type: ignore[call-arg]  # aiormq.Channel has it, its ABC not
                        )
            except CONNECTION_ERRORS as error:
                if blocked.expired():
                    raise BrokerBlocked(f"RabbitMQ blocked publishing ({self._blocking.reason}) "
                                        f"while a publish to {queue} waited for its confirm",
                                        unblocked=self._blocking.unblocked) from error
                raise BrokerUnavailable(f"publish to {queue} failed: {error!r}") from error
            except asyncio.CancelledError as error:
                if cancelled_here():
                    raise  # this publish itself is cancelled (a client hang-up, a shutdown)
                # aiormq cancels the confirms still awaited on a connection it gives up (a
                # missed heartbeat): the message's fate is unknown, as after a confirm timeout.
                raise BrokerUnavailable(
                    f"publish to {queue}: its connection was given up before the confirm") from error
            if not isinstance(confirmation, spec.Basic.Ack):
                raise BrokerUnavailable(f"publish to {queue} was not confirmed: {confirmation!r}")
            if self._metrics is not None:
                self._metrics.publish_confirm.labels(queue=queue).observe(
                    time.perf_counter() - started, exemplar=exemplar()
                )
