"""The broker against the real RabbitMQ: topology, confirms, redelivery, dead-letters, reconnection;
and against a node of its own driven into its memory alarm."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import aiormq
import pytest
from prometheus_client import CollectorRegistry

from cpe_devkit.rabbit_node import RabbitNode
from provisioning.errors import BrokerBlocked, BrokerBlockedRefused, BrokerUnavailable
from provisioning.messaging import Broker, Delivery, dead_letter_queue
from provisioning.settings import BrokerSettings
from provisioning.telemetry.metrics import BrokerMetrics


@pytest.fixture
async def broker(broker_settings: BrokerSettings) -> AsyncIterator[Broker]:
    async with Broker(broker_settings, name=f"test-{uuid.uuid4().hex[:8]}") as broker:
        await broker.wait_connected(10)
        yield broker


async def queue_depth(settings: BrokerSettings, queue: str) -> int:
    connection = await aiormq.connect(settings.url)
    try:
        channel = await connection.channel()
        declared = await channel.queue_declare(queue, passive=True)
        return int(declared.message_count or 0)
    finally:
        await connection.close()


async def wait_for_depth(settings: BrokerSettings, queue: str, depth: int) -> None:
    for _ in range(100):
        if await queue_depth(settings, queue) == depth:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{queue} never reached {depth} messages")


async def test_queues_are_durable_quorum_queues_with_a_dead_letter_queue(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    output = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "type", "durable", "arguments"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    rows = {line.split("\t")[0]: line for line in output.splitlines()}
    for queue in (broker_settings.tasks_queue, broker_settings.results_queue):
        assert "quorum\ttrue" in rows[queue]
        assert "x-delivery-limit" in rows[queue]
        assert dead_letter_queue(queue) in rows[queue]
        assert "quorum\ttrue" in rows[dead_letter_queue(queue)]
        assert "x-message-ttl" in rows[dead_letter_queue(queue)]  # credentials do not stay for ever


async def test_a_confirmed_message_is_consumed_with_its_id_and_headers(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    received: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await received.put(delivery)
        await delivery.ack()

    consumer = Broker(broker_settings, name="test-consumer")
    consumer.add_consumer(broker_settings.tasks_queue, handler, prefetch=10)
    async with consumer:
        await broker.publish(broker_settings.tasks_queue, b'{"x":1}', message_id="m-1",
                             headers={"traceparent": "00-abc-def-01"})
        delivery = await asyncio.wait_for(received.get(), 10)
    assert delivery.body == b'{"x":1}'
    assert delivery.message_id == "m-1"
    assert delivery.headers["traceparent"] == "00-abc-def-01"
    assert await queue_depth(broker_settings, broker_settings.tasks_queue) == 0


async def test_an_unacked_message_is_redelivered_when_its_consumer_dies(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    first_seen = asyncio.Event()

    async def dies_holding(delivery: Delivery) -> None:
        first_seen.set()
        await asyncio.sleep(3600)

    doomed = Broker(broker_settings, name="test-doomed")
    doomed.add_consumer(broker_settings.tasks_queue, dies_holding, prefetch=1)
    await doomed.start(wait_seconds=10)
    await broker.publish(broker_settings.tasks_queue, b"work", message_id="m-2")
    await asyncio.wait_for(first_seen.wait(), 10)
    await doomed.close()  # the connection goes away without an ack

    redelivered: asyncio.Queue[Delivery] = asyncio.Queue()

    async def survivor(delivery: Delivery) -> None:
        await redelivered.put(delivery)
        await delivery.ack()

    heir = Broker(broker_settings, name="test-heir")
    heir.add_consumer(broker_settings.tasks_queue, survivor, prefetch=1)
    async with heir:
        delivery = await asyncio.wait_for(redelivered.get(), 10)
    assert delivery.body == b"work"
    assert delivery.redelivered


async def test_a_rejected_message_lands_in_the_dead_letter_queue(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    async def rejects(delivery: Delivery) -> None:
        await delivery.dead_letter("test")

    consumer = Broker(broker_settings, name="test-rejecter")
    consumer.add_consumer(broker_settings.results_queue, rejects, prefetch=1)
    async with consumer:
        await broker.publish(broker_settings.results_queue, b"poison", message_id="m-3")
        await wait_for_depth(broker_settings, dead_letter_queue(broker_settings.results_queue), 1)
    assert await queue_depth(broker_settings, broker_settings.results_queue) == 0


async def test_a_message_requeued_past_the_delivery_limit_is_dead_lettered(
    broker_settings: BrokerSettings,
) -> None:
    limited = dataclasses.replace(broker_settings, delivery_limit=2)
    attempts = 0

    async def always_requeues(delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        await delivery.requeue()

    async with Broker(limited, name="test-limit") as publisher:
        await publisher.wait_connected(10)
        publisher.add_consumer(limited.tasks_queue, always_requeues, prefetch=1)
        consumer = Broker(limited, name="test-limit-consumer")
        consumer.add_consumer(limited.tasks_queue, always_requeues, prefetch=1)
        async with consumer:
            await publisher.publish(limited.tasks_queue, b"loops", message_id="m-4")
            await wait_for_depth(limited, dead_letter_queue(limited.tasks_queue), 1)
    assert attempts == 3  # the first delivery and two redeliveries


async def test_publishing_without_a_connection_fails_at_once(broker_settings: BrokerSettings) -> None:
    nowhere = dataclasses.replace(broker_settings, url="amqp://guest:guest@127.0.0.1:1/")
    async with Broker(nowhere, name="test-nowhere") as broker:
        with pytest.raises(BrokerUnavailable):
            await broker.publish(nowhere.tasks_queue, b"x", message_id="m-5")


async def test_the_broker_reconnects_and_resumes_consuming_after_its_connection_is_closed(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await received.put(delivery.body)
        await delivery.ack()

    name = f"test-reconnect-{uuid.uuid4().hex[:8]}"
    consumer = Broker(broker_settings, name=name)
    consumer.add_consumer(broker_settings.tasks_queue, handler, prefetch=5)
    async with consumer:
        await consumer.wait_connected(10)
        close_connection_named(name)
        for _ in range(100):
            if consumer.reconnects:
                break
            await asyncio.sleep(0.1)
        assert consumer.reconnects == 1
        await consumer.wait_connected(10)
        await broker.publish(broker_settings.tasks_queue, b"after", message_id="m-6")
        assert await asyncio.wait_for(received.get(), 10) == b"after"


def close_connection_named(name: str) -> None:
    """Ask RabbitMQ to drop one client's connection, as a broker-side fault would."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    assert pids, f"no connection named {name}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test fault"],
                       check=True, timeout=60, capture_output=True)


async def test_an_oversized_message_is_dead_lettered_before_its_handler_sees_it(
    broker: Broker, broker_settings: BrokerSettings
) -> None:
    handled: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        handled.append(delivery.body)
        await delivery.ack()

    consumer = Broker(broker_settings, name="test-oversized")
    consumer.add_consumer(broker_settings.tasks_queue, handler, prefetch=5)
    async with consumer:
        await consumer.wait_connected(10)
        await broker.publish(broker_settings.tasks_queue, b"x" * (broker_settings.max_message_bytes + 1),
                             message_id="big")
        await broker.publish(broker_settings.tasks_queue, b"{}", message_id="many-headers",
                             headers={f"h{n}": "v" for n in range(40)})
        await broker.publish(broker_settings.tasks_queue, b"small", message_id="fine")
        await wait_for_depth(broker_settings, dead_letter_queue(broker_settings.tasks_queue), 2)
        for _ in range(50):
            if handled:
                break
            await asyncio.sleep(0.1)
    assert handled == [b"small"]


async def test_a_handler_that_crashes_gets_the_message_back_until_the_delivery_limit(
    broker_settings: BrokerSettings,
) -> None:
    limited = dataclasses.replace(broker_settings, delivery_limit=2)
    attempts = 0

    async def crashes(delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("a bug in the handler")

    consumer = Broker(limited, name="test-crash")
    consumer.add_consumer(limited.tasks_queue, crashes, prefetch=1)
    async with consumer:
        await consumer.wait_connected(10)
        publisher = Broker(limited, name="test-crash-publisher")
        async with publisher:
            await publisher.wait_connected(10)
            await publisher.publish(limited.tasks_queue, b"boom", message_id="m-crash")
            await wait_for_depth(limited, dead_letter_queue(limited.tasks_queue), 1)
    assert attempts == 3


@pytest.fixture(scope="module")
def alarmed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this module's own: its memory alarm must not block the machine's."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq-alarms"))
    try:
        node.start()
        yield node
    finally:
        node.close()
        shutil.rmtree(node.directory / "mnesia", ignore_errors=True)


@pytest.mark.timeout(120)
async def test_a_memory_alarm_refuses_publishes_at_once_until_it_clears_and_a_new_connection_starts_unblocked(
    alarmed_node: RabbitNode, broker_settings: BrokerSettings
) -> None:
    settings = dataclasses.replace(broker_settings, url=alarmed_node.amqp_url,
                                   urls=(alarmed_node.amqp_url,), publish_timeout_seconds=30.0)
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)

    def gauge() -> float | None:
        return registry.get_sample_value("provisioning_amqp_blocked")

    async with Broker(settings, name="test-alarm", metrics=metrics) as broker:
        await broker.wait_connected(10)
        await broker.publish(settings.tasks_queue, b"before", message_id="m-a1")
        await asyncio.to_thread(alarmed_node.raise_alarm, "memory")
        try:
            with pytest.raises(BrokerBlocked):  # the publish RabbitMQ blocks the connection at
                await asyncio.wait_for(
                    broker.publish(settings.tasks_queue, b"cut short", message_id="m-a2"), 10)
            assert broker.blocked == "low on memory" and gauge() == 1
            with pytest.raises(BrokerBlockedRefused):
                await broker.publish(settings.tasks_queue, b"refused", message_id="m-a3")
            with pytest.raises(BrokerBlockedRefused):
                await broker.declare_parking(f"{settings.tasks_queue}.parked.x", 60)

            # A new connection (the old one closed by the broker) starts unblocked; RabbitMQ
            # blocks it again at its first publish.
            reconnects = broker.reconnects
            await asyncio.to_thread(alarmed_node.ctl, "close_all_connections", "test")
            for _ in range(100):
                if broker.reconnects > reconnects and broker.connected:
                    break
                await asyncio.sleep(0.1)
            assert broker.connected and broker.blocked is None
            assert gauge() == 0
            with pytest.raises(BrokerBlocked):
                await asyncio.wait_for(
                    broker.publish(settings.tasks_queue, b"cut short", message_id="m-a4"), 10)
            assert broker.blocked == "low on memory"
        finally:
            await asyncio.to_thread(alarmed_node.clear_alarm, "memory")
        for _ in range(50):
            if broker.blocked is None:
                break
            await asyncio.sleep(0.1)
        assert broker.blocked is None and gauge() == 0
        await asyncio.wait_for(broker.publish(settings.tasks_queue, b"after", message_id="m-a5"), 10)
