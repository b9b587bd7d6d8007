"""RabbitMQ over aiormq, one job per module:

    broker.py             the supervisor: connect, reconnect with backoff, re-declare, re-attach
    addresses.py          the broker list of one process: shuffled once, walked on failures
    topology.py           queue names and arguments, dead-letter queues, ``declare_topology``
    publisher.py          publishing with publisher confirms
    inbound.py            the inbound policy around every handler: oversize, tracing, requeue
    delivery.py           one delivered message and its three fates
    connection_errors.py  what aiormq raises when a connection or channel is gone
"""

from .broker import Broker
from .delivery import Delivery, MessageHandler
from .topology import (
    all_queues,
    dead_letter_arguments,
    dead_letter_queue,
    declare_topology,
    delay_queue,
    queue_arguments,
    webhook_queues,
)

__all__ = [
    "Broker",
    "Delivery",
    "MessageHandler",
    "all_queues",
    "dead_letter_arguments",
    "dead_letter_queue",
    "declare_topology",
    "delay_queue",
    "queue_arguments",
    "webhook_queues",
]
