"""The webhooks' queues on the real RabbitMQ: declared by every broker, delay queues that
dead-letter back on expiry, and deleted with a run's data (the platform's own refused)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import aiormq
import pytest
from aiormq import spec

from cpe_devkit.environment import isolated_environment
from cpe_devkit.probes import queue_exists
from cpe_devkit.run_data import NotAThrowawayRun, delete_run_data
from provisioning.environment import Environment
from provisioning.messaging import Broker, dead_letter_queue, delay_queue, webhook_queues
from provisioning.settings import BrokerSettings

pytestmark = pytest.mark.timeout(30)


def rows() -> dict[str, str]:
    output = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "type", "durable", "arguments"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    return {line.split("\t")[0]: line for line in output.splitlines()}


async def test_every_broker_declares_the_webhooks_queue_its_dead_letters_and_one_delay_queue_per_pause(
        run_environment: dict[str, str]) -> None:
    run_environment["WEBHOOK_RETRY_SCHEDULE"] = "0.5,2,2"
    settings = BrokerSettings.from_env(Environment(run_environment))
    async with Broker(settings, name="topology") as broker:
        await broker.wait_connected(10)
    queue = settings.webhooks_queue
    assert webhook_queues(settings) == [queue, dead_letter_queue(queue), f"{queue}.delay.500ms",
                                        f"{queue}.delay.2000ms"]
    declared = rows()
    assert "quorum\ttrue" in declared[queue] and dead_letter_queue(queue) in declared[queue]
    for delay, milliseconds in ((0.5, 500), (2, 2000)):
        row = declared[delay_queue(queue, delay)]
        assert "quorum\ttrue" in row
        assert f"{{\"x-message-ttl\",{milliseconds}}}" in row.replace(" ", "")
        assert f'{{"x-dead-letter-routing-key","{queue}"}}' in row


async def test_a_message_expires_out_of_its_delay_queue_into_the_webhooks_queue_at_its_own_expiration(
        run_environment: dict[str, str]) -> None:
    run_environment["WEBHOOK_RETRY_SCHEDULE"] = "5"
    settings = BrokerSettings.from_env(Environment(run_environment))
    async with Broker(settings, name="delay") as broker:
        await broker.wait_connected(10)
        published = time.monotonic()
        await broker.publish(delay_queue(settings.webhooks_queue, 5), b"{}", message_id="msg_x",
                             expiration_ms=400)
        connection = await aiormq.connect(settings.url)
        try:
            channel = await connection.channel()
            while True:
                message = await channel.basic_get(settings.webhooks_queue, no_ack=True)
                if isinstance(message.delivery, spec.Basic.GetOk):
                    break
                assert time.monotonic() - published < 4, "the message never came back"
                await asyncio.sleep(0.02)
        finally:
            await connection.close()
    waited = time.monotonic() - published
    assert 0.35 <= waited < 2.0, waited  # its own 0.4 s, not the queue's 5 s


async def test_a_runs_webhook_queues_are_deleted_with_its_data() -> None:
    run = {**isolated_environment("hooks"), "WEBHOOK_RETRY_SCHEDULE": "1,3"}
    settings = BrokerSettings.from_env(Environment(run))
    async with Broker(settings, name=f"cleanup-{uuid.uuid4().hex[:6]}") as broker:
        await broker.wait_connected(10)
    await delete_run_data(run)
    assert [await queue_exists(run["AMQP_URL"], queue) for queue in webhook_queues(settings)] == [False] * 4


@pytest.mark.parametrize("platform_names", [
    {"WEBHOOKS_QUEUE": "webhooks_queue"},
    {"WEBHOOKS_QUEUE": "webhooks_queue", "WEBHOOK_RETRY_SCHEDULE": "7"},
])
async def test_the_platforms_own_webhook_queues_are_refused(platform_names: dict[str, str]) -> None:
    with pytest.raises(NotAThrowawayRun, match="webhooks_queue"):
        await delete_run_data({**isolated_environment("hooks"), **platform_names})
