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

On a cluster every quorum queue (work, dead-letter and delay queues) is created with
``x-quorum-initial-group-size`` = ``QUORUM_INITIAL_GROUP_SIZE`` replicas (RabbitMQ caps it at
the cluster's nodes). RabbitMQ 3.10 applies that argument at creation only, yet compares it on
every redeclare like any other: a queue created without it, or with another size, would refuse
the declaration with PRECONDITION_FAILED. The size of an existing queue is history, not
configuration, so ``declare_topology`` then declares that queue again with the size it was
created with (RabbitMQ's error names it) and logs it; its members are changed with
``rabbitmq-queues grow`` / ``shrink`` or ``add_member``. Any other mismatch still fails.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiormq.abc
from aiormq.exceptions import ChannelPreconditionFailed

from .. import names
from ..settings import BrokerSettings

log = logging.getLogger(__name__)

GROUP_SIZE = "x-quorum-initial-group-size"
# RabbitMQ's words for a group size mismatch: "... current is none", "current is '2'" or
# "current is the value '2' of type 'byte'".
_GROUP_SIZE_MISMATCH = re.compile(
    rf"inequivalent arg '{GROUP_SIZE}'.* current is (?:none|(?:the value )?'(\d+)')")


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


def delay_arguments(webhooks_queue: str, delay_seconds: float, *,
                    group_size: int | None = None) -> dict[str, Any]:
    """A delay queue: its messages expire after the pause (or their own, shorter, expiration)
    and are dead-lettered, at least once, back into the webhooks queue."""
    return {
        **_quorum(group_size),
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


def queue_arguments(queue: str, delivery_limit: int, *,
                    group_size: int | None = None) -> dict[str, Any]:
    """Arguments of a work queue: quorum (``group_size`` replicas when given), bounded
    redeliveries, safe dead-lettering."""
    return {
        **_quorum(group_size),
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_arguments(ttl_seconds: int, *, group_size: int | None = None) -> dict[str, Any]:
    """Dead letters are kept for inspection, but not for ever: a task message carries the
    device's credentials, which must not stay at rest in the broker indefinitely."""
    return {**_quorum(group_size), "x-message-ttl": ttl_seconds * 1000}


def _quorum(group_size: int | None) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **({} if group_size is None else {GROUP_SIZE: group_size})}


def topology(settings: BrokerSettings) -> list[tuple[str, dict[str, Any]]]:
    """Every queue ``declare_topology`` declares, with its arguments, in declaration order."""
    size = settings.quorum_initial_group_size
    queues: list[tuple[str, dict[str, Any]]] = []
    for queue in (settings.tasks_queue, settings.results_queue, settings.webhooks_queue):
        queues.append((dead_letter_queue(queue),
                       dead_letter_arguments(settings.dead_letter_ttl_seconds, group_size=size)))
        queues.append((queue, queue_arguments(queue, settings.delivery_limit, group_size=size)))
    for delay in sorted(set(settings.webhook_retry_delays)):
        queues.append((delay_queue(settings.webhooks_queue, delay),
                       delay_arguments(settings.webhooks_queue, delay, group_size=size)))
    return queues


def created_group_size(error: ChannelPreconditionFailed) -> tuple[bool, int | None]:
    """Whether RabbitMQ refused a declaration for its group size alone, and the size the queue
    was created with (None: created without the argument)."""
    found = _GROUP_SIZE_MISMATCH.search(str(error))
    if found is None:
        return False, None
    return True, None if found.group(1) is None else int(found.group(1))


async def declare_topology(connection: aiormq.abc.AbstractConnection,
                           settings: BrokerSettings) -> None:
    """Declare the work queues (tasks, results, webhooks), their dead-letter queues and the
    webhooks' delay queues, on a channel of its own; safe to repeat. A queue that exists with
    another initial group size is declared again with its own (see the module docstring)."""
    channel = await connection.channel()
    try:
        for queue, arguments in topology(settings):
            try:
                await channel.queue_declare(queue, durable=True, arguments=arguments)
            except ChannelPreconditionFailed as error:
                mismatch, created = created_group_size(error)
                if not mismatch:
                    raise
                log.info("queue %s was created with %s %s, not %s: kept (it applies at creation "
                         "only; rabbitmq-queues grow/shrink changes its members)", queue, GROUP_SIZE,
                         created, arguments[GROUP_SIZE])
                kept = {key: value for key, value in arguments.items() if key != GROUP_SIZE}
                if created is not None:
                    kept[GROUP_SIZE] = created
                channel = await connection.channel()  # the refusal closed the channel
                await channel.queue_declare(queue, durable=True, arguments=kept)
    finally:
        if not channel.is_closed:
            await channel.close()
