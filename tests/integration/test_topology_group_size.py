"""A queue created before ``x-quorum-initial-group-size`` was sent (or with another size)
still takes the platform's declaration: RabbitMQ 3.10 compares that argument on every
redeclare, and ``declare_topology`` declares such a queue again with the size it has."""

from __future__ import annotations

import dataclasses

import aiormq
import pytest

from cpe_devkit.run_data import delete_queues
from provisioning.messaging.topology import GROUP_SIZE, declare_topology, topology
from provisioning.settings import BrokerSettings


@pytest.mark.parametrize("created_with", [None, 1])
async def test_queues_created_with_another_group_size_are_declared_again(
    broker_settings: BrokerSettings, created_with: int | None
) -> None:
    queues = topology(broker_settings)
    connection = await aiormq.connect(broker_settings.url)
    try:
        channel = await connection.channel()
        for queue, arguments in queues:  # as an older release (or another size) created them
            older = {k: v for k, v in arguments.items() if k != GROUP_SIZE}
            await channel.queue_declare(queue, durable=True, arguments={
                **older, **({} if created_with is None else {GROUP_SIZE: created_with})})
        await declare_topology(connection, dataclasses.replace(broker_settings, quorum_initial_group_size=3))
        await declare_topology(connection, broker_settings)  # and again: safe to repeat
    finally:
        await connection.close()
        await delete_queues(broker_settings.url, [queue for queue, _ in queues])
