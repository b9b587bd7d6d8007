"""What a test or the benchmark reads from a running platform from the outside: Prometheus
samples of one process, and a queue's state, its dead letters, or a message put straight on
it (as a stray producer would)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence

import aiormq
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity
from prometheus_client.parser import text_string_to_metric_families

from provisioning.messaging import dead_letter_queue

from .processes import http_get

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PERSISTENT = 2
AMQP_SECONDS = 10.0
POLL_SECONDS = 0.2


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """Every sample of one process's ``/metrics``: (name, labels) -> value."""
    status, body = http_get(f"http://{host}:{port}/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics on port {port} answered {status}")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample_total(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set((labels or {}).items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


# A component's metrics: its base port variable, and the variable of its process count.
COMPONENT_METRICS = {
    "api": ("API_METRICS_PORT", "API_WORKERS"),
    "stub": ("STUB_METRICS_PORT", "STUB_WORKERS"),
    "worker": ("WORKER_METRICS_PORT", "WORKER_PROCESSES"),
}


def component_total(environment: Mapping[str, str], component: str, name: str,
                    **labels: str) -> float:
    """``sample_total`` summed over every process of a component (``api``, ``stub`` or
    ``worker``) of the platform the environment describes: process ``i`` serves its metrics on
    the base port + ``i``."""
    port_variable, count_variable = COMPONENT_METRICS[component]
    base, count = int(environment[port_variable]), int(environment.get(count_variable, "1"))
    return sum(sample_total(scrape(base + index), name, labels) for index in range(count))


async def queue_state(amqp_url: str, queue: str) -> tuple[int, int]:
    """Messages ready and consumers attached, as the queue itself says now."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0), int(declared.consumer_count or 0)
    finally:
        await connection.close()


async def queue_exists(amqp_url: str, queue: str) -> bool:
    connection = await aiormq.connect(amqp_url)
    try:
        await (await connection.channel()).queue_declare(queue, passive=True)
        return True
    except ChannelNotFoundEntity:
        return False
    finally:
        await connection.close()


async def declare_queues(amqp_url: str, queues: Sequence[str]) -> None:
    """Declare plain durable queues (as a stray client, or a leak, would leave them)."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_declare(queue, durable=True)
    finally:
        await connection.close()


async def publish_raw(amqp_url: str, queue: str, body: bytes) -> None:
    """Put a persistent message straight on a queue and wait for the broker's confirm."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        confirmation = await channel.basic_publish(
            body, routing_key=queue,
            properties=spec.Basic.Properties(delivery_mode=PERSISTENT, message_id=str(uuid.uuid4())),
            timeout=AMQP_SECONDS)
        if not isinstance(confirmation, spec.Basic.Ack):
            raise RuntimeError(f"publish to {queue} not confirmed: {confirmation!r}")
    finally:
        await connection.close()


async def take_dead_letters(amqp_url: str, queue: str, count: int, timeout: float) -> list[bytes]:
    """Wait until ``queue``'s dead-letter queue holds ``count`` messages (or ``timeout``
    passed), then take every message it holds: their bodies."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        dead = dead_letter_queue(queue)
        deadline = time.monotonic() + timeout
        while True:
            declared = await channel.queue_declare(dead, passive=True)
            if (declared.message_count or 0) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        bodies = []
        for _ in range(declared.message_count or 0):
            message = await channel.basic_get(dead, no_ack=True, timeout=AMQP_SECONDS)
            bodies.append(message.body)
        return bodies
    finally:
        await connection.close()
