"""Retrying an operation while its handler still holds the message that triggered it.

The worker's result publish, a serialize-mode hand-over and a final task's webhook all run
between a message's delivery and its ack. While the broker or Redis is away the handler keeps
the message and tries again (no requeue: requeues count against the delivery limit); once the
message's channel is gone, nothing can settle it any more, so it gives up and the broker's
redelivery of the trigger runs the operation again. While RabbitMQ blocks publishing (a resource
alarm, ``BrokerBlocked``) a pause ends early when the connection is unblocked, so held results
go out as soon as the alarm clears rather than up to a whole pause later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from .backoff import Backoff
from .collaborators import InboundDelivery
from .errors import BrokerBlocked

log = logging.getLogger(__name__)


async def retry_while_held(delivery: InboundDelivery, operation: Callable[[], Awaitable[object]],
                           *, retried: tuple[type[Exception], ...], backoff: Backoff,
                           what: str, fields: Mapping[str, str]) -> bool:
    """Run ``operation`` until it succeeds (True) or, after one of the ``retried`` errors, the
    delivery can no longer be settled (False); ``what`` names it in the log."""
    pauses = backoff.delays()
    while True:
        try:
            await operation()
            return True
        except retried as error:
            if not delivery.deliverable:
                log.warning("%s failed and the trigger's channel is gone; it will be "
                            "redelivered: %s", what, error, extra=dict(fields))
                return False
            pause = next(pauses)
            log.warning("%s failed, retrying in %.1fs: %s", what, pause, error, extra=dict(fields))
            await _pause(pause, error)


async def _pause(seconds: float, error: Exception) -> None:
    """``seconds``, or less when the error says when a retry is worth it (an unblock)."""
    if isinstance(error, BrokerBlocked) and error.unblocked is not None:
        try:
            await asyncio.wait_for(error.unblocked(), seconds)
        except TimeoutError:
            pass
        return
    await asyncio.sleep(seconds)
