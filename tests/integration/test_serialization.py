"""Hand-overs of a device's turn (serialize mode), on the real Redis and RabbitMQ."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest
from aiormq import spec

from cpe_devkit.probes import queue_exists
from provisioning.messaging import Broker
from provisioning.messaging.topology import parking_queue
from provisioning.models import FailureReason, TaskStatus
from provisioning.serialization import Serializer
from provisioning.settings import BrokerSettings
from provisioning.store import TaskStore

PUBLISH_TIMEOUT = 0.25
MAX_WAITING = 5


@pytest.fixture
async def broker(broker_settings: BrokerSettings) -> AsyncIterator[Broker]:
    settings = dataclasses.replace(broker_settings, publish_timeout_seconds=PUBLISH_TIMEOUT)
    async with Broker(settings, name="serialization-test") as broker:
        await broker.wait_connected(10)
        yield broker


@pytest.fixture
def serializer(store: TaskStore, broker: Broker, broker_settings: BrokerSettings) -> Serializer:
    return Serializer(store, broker, tasks_queue=broker_settings.tasks_queue,
                      publish_timeout_seconds=PUBLISH_TIMEOUT)


def device() -> str:
    return f"SER{uuid.uuid4().hex[:10]}"


async def park(store: TaskStore, broker: Broker, tasks_queue: str, equipment_id: str,
               *, publish: bool = True) -> str:
    """A create in turn, and (``publish``) its message published as Service B would."""
    task_id = str(uuid.uuid4())
    await store.create_in_turn(task_id, equipment_id, max_waiting=MAX_WAITING)
    if publish:
        queue = parking_queue(tasks_queue, task_id)
        await broker.declare_parking(queue, 60)
        await broker.publish(queue, task_id.encode(), message_id=task_id,
                             headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    return task_id


async def take_all(amqp_url: str, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        taken: list[tuple[bytes, dict[str, Any]]] = []
        while isinstance((message := await channel.basic_get(queue, no_ack=True)).delivery,
                         spec.Basic.GetOk):
            taken.append((message.body, dict(message.header.properties.headers or {})))
        return taken
    finally:
        await connection.close()


async def test_a_hand_over_moves_the_next_tasks_message_with_its_headers_and_drops_its_queue(
    store: TaskStore, broker: Broker, serializer: Serializer, broker_settings: BrokerSettings,
) -> None:
    tasks_queue, equipment_id = broker_settings.tasks_queue, device()
    first = await park(store, broker, tasks_queue, equipment_id, publish=False)  # takes the turn
    second = await park(store, broker, tasks_queue, equipment_id)
    await store.transition(first, TaskStatus.COMPLETED)

    assert await serializer.hand_over(equipment_id) == second
    [(body, headers)] = await take_all(broker_settings.url, tasks_queue)
    assert body == second.encode() and headers["traceparent"] == f"00-{'ab' * 16}-{'cd' * 8}-01"
    assert await store.parked(second) == (TaskStatus.PENDING, False)
    assert not await queue_exists(broker_settings.url, parking_queue(tasks_queue, second))
    # Again: nothing to do, nothing published twice.
    assert await serializer.hand_over(equipment_id) == second
    assert await take_all(broker_settings.url, tasks_queue) == []


async def test_a_parked_task_whose_message_never_arrives_is_tombstoned_and_the_turn_goes_on(
    store: TaskStore, broker: Broker, serializer: Serializer, broker_settings: BrokerSettings,
) -> None:
    tasks_queue, equipment_id = broker_settings.tasks_queue, device()
    first = await park(store, broker, tasks_queue, equipment_id, publish=False)
    lost = await park(store, broker, tasks_queue, equipment_id, publish=False)
    third = await park(store, broker, tasks_queue, equipment_id)
    await store.transition(first, TaskStatus.COMPLETED)

    started = time.monotonic()
    assert await serializer.hand_over(equipment_id) == third
    assert time.monotonic() - started >= 2 * PUBLISH_TIMEOUT
    record = await store.get(lost)
    assert record is not None
    assert (record.status, record.failure) == (TaskStatus.FAILED, FailureReason.NOT_QUEUED)
    assert [body for body, _ in await take_all(broker_settings.url, tasks_queue)] == [third.encode()]


async def test_a_hand_over_skips_cancelled_tasks_and_frees_the_turn_when_none_waits(
    store: TaskStore, broker: Broker, serializer: Serializer, broker_settings: BrokerSettings,
) -> None:
    tasks_queue, equipment_id = broker_settings.tasks_queue, device()
    first = await park(store, broker, tasks_queue, equipment_id, publish=False)
    cancelled = await park(store, broker, tasks_queue, equipment_id)
    await store.cancel(cancelled, equipment_id)
    await store.transition(first, TaskStatus.COMPLETED)

    assert await serializer.hand_over(equipment_id) is None
    assert await take_all(broker_settings.url, tasks_queue) == []
    assert not await queue_exists(broker_settings.url, parking_queue(tasks_queue, cancelled))
    assert await store.redis.exists(store.active_key(equipment_id)) == 0
