"""Where messages go: the queues, their arguments, and their dead-letter queues.

Each work queue is a durable quorum queue with a delivery limit; a message that exceeds it,
or that a consumer rejects, is dead-lettered (at least once) through the default exchange to
``dead_letter_queue(queue)``, a durable quorum queue of its own whose messages expire.
Every name derived from a queue name is derived here, so tests and tools ask rather than retype.

Webhook retries wait in delay queues (``provisioning.webhooks.retries``): one per distinct pause
of ``WEBHOOK_RETRY_SCHEDULE``, ``{webhooks queue}.delay.{ms}ms``, never consumed. Its queue TTL
is the pause (a message may carry a shorter expiration: the jitter); an expired message is
dead-lettered through the default exchange back into the webhooks queue. They are quorum
queues: RabbitMQ 3.10 gives quorum queues queue and per-message TTL and at-least-once
dead-lettering of expired messages, so a waiting retry survives a broker node's loss and is
not dropped on its way back (``tests/integration/test_webhook_delivery.py`` checks the round
trip on this machine's RabbitMQ).
"""

from __future__ import annotations

from typing import Any

import aiormq.abc

from .. import names
from ..settings import BrokerSettings


def dead_letter_queue(queue: str) -> str:
    """The queue that receives what ``queue`` dead-letters."""
    return f"{queue}{names.DEAD_LETTER_SUFFIX}"


def parking_queue(tasks_queue: str, task_id: str) -> str:
    """Serialize mode: the queue of its own where a task's message waits for the device's turn
    (``provisioning.serialization``)."""
    return f"{parking_prefix(tasks_queue)}{task_id}"


def parking_prefix(tasks_queue: str) -> str:
    """What every parking queue of ``tasks_queue`` starts with."""
    return f"{tasks_queue}{names.PARKING_SUFFIX}"


def parking_arguments(ttl_seconds: int) -> dict[str, Any]:
    """A parking queue holds one message and never has a consumer (its message is fetched with
    ``basic.get``): a durable classic queue that RabbitMQ deletes once unused for a task's TTL,
    so an abandoned one (a create that never finished) does not keep credentials for ever."""
    return {"x-queue-type": "classic", "x-expires": ttl_seconds * 1000}


def delay_queue(webhooks_queue: str, delay_seconds: float) -> str:
    """The queue where a webhook retry waits ``delay_seconds`` before going back to
    ``webhooks_queue``."""
    return f"{webhooks_queue}{names.DELAY_SUFFIX}{_milliseconds(delay_seconds)}ms"


def delay_queues(settings: BrokerSettings) -> list[str]:
    """One delay queue per distinct pause of the retry schedule, shortest first."""
    return [delay_queue(settings.webhooks_queue, delay)
            for delay in sorted(set(settings.webhook_retry_delays))]


def webhook_queues(settings: BrokerSettings) -> list[str]:
    """The webhooks queue, its dead-letter queue and its delay queues."""
    queue = settings.webhooks_queue
    return [queue, dead_letter_queue(queue), *delay_queues(settings)]


def delay_arguments(webhooks_queue: str, delay_seconds: float) -> dict[str, Any]:
    """A delay queue: its messages expire after the pause (or their own, shorter, expiration)
    and are dead-lettered, at least once, back into the webhooks queue."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": _milliseconds(delay_seconds),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": webhooks_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def all_queues(*work_queues: str) -> list[str]:
    """The work queues, then their dead-letter queues in the same order."""
    return [*work_queues, *(dead_letter_queue(queue) for queue in work_queues)]


def queue_arguments(queue: str, delivery_limit: int) -> dict[str, Any]:
    """Arguments of a work queue: quorum, bounded redeliveries, safe dead-lettering."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_arguments(ttl_seconds: int) -> dict[str, Any]:
    """Dead letters are kept for inspection, but not for ever: a task message carries the
    device's credentials, which must not stay at rest in the broker indefinitely."""
    return {"x-queue-type": "quorum", "x-message-ttl": ttl_seconds * 1000}


async def declare_topology(channel: aiormq.abc.AbstractChannel, settings: BrokerSettings) -> None:
    """Declare the work queues (tasks, results, webhooks), their dead-letter queues and the
    webhooks' delay queues; safe to repeat."""
    for queue in (settings.tasks_queue, settings.results_queue, settings.webhooks_queue):
        await channel.queue_declare(
            dead_letter_queue(queue),
            durable=True,
            arguments=dead_letter_arguments(settings.dead_letter_ttl_seconds),
        )
        await channel.queue_declare(
            queue, durable=True, arguments=queue_arguments(queue, settings.delivery_limit)
        )
    for delay in sorted(set(settings.webhook_retry_delays)):
        await channel.queue_declare(
            delay_queue(settings.webhooks_queue, delay),
            durable=True,
            arguments=delay_arguments(settings.webhooks_queue, delay),
        )
