"""Webhook delivery against the real RabbitMQ and an HTTPS receiver: delivered and verified,
retried through a delay queue, stopped by 410, dead-lettered past the schedule, redirects
not followed, refused addresses never called."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from cpe_devkit.probes import queue_state, take_dead_letters
from cpe_devkit.webhook_receiver import Answer, WebhookReceiver, new_secret
from provisioning.environment import Environment
from provisioning.messaging import Broker, delay_queue
from provisioning.settings import BrokerSettings, WebhookSettings
from provisioning.telemetry.metrics import WebhookMetrics
from provisioning.webhooks.callback_url import CallbackPolicy
from provisioning.webhooks.client import USER_AGENT, WebhookClient
from provisioning.webhooks.delivery import WebhookDeliverer
from provisioning.webhooks.notice import WebhookNotice, webhook_id
from provisioning.webhooks.retries import RetrySchedule

pytestmark = pytest.mark.timeout(30)

SECRET = new_secret()
RETRY_SECONDS = 1.0


@pytest.fixture
def receiver(cert_dir: Path) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(cert_dir, SECRET) as receiver:
        yield receiver


def webhook_settings(cert_dir: Path, **overrides: str) -> WebhookSettings:
    return WebhookSettings.from_env(Environment({
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost", "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_SECRET": SECRET, "WEBHOOK_CA_FILE": str(cert_dir / "ca.pem"),
        "WEBHOOK_TIMEOUT_SECONDS": "3", **overrides}), signing=True)


Delivering = Callable[..., AbstractAsyncContextManager[tuple[Broker, WebhookMetrics]]]


@pytest.fixture
def delivering(run_environment: dict[str, str], cert_dir: Path) -> Delivering:
    """A broker consuming the run's webhooks queue with a deliverer, as a worker process does."""

    @asynccontextmanager
    async def start(schedule: str = f"{RETRY_SECONDS}", **overrides: str
                    ) -> AsyncIterator[tuple[Broker, WebhookMetrics]]:
        run_environment["WEBHOOK_RETRY_SCHEDULE"] = schedule  # so its delay queues are cleaned up
        broker_settings = BrokerSettings.from_env(Environment(run_environment))
        settings = webhook_settings(cert_dir, **overrides)
        metrics = WebhookMetrics(CollectorRegistry())
        async with WebhookClient(settings, traced=False) as client:
            broker = Broker(broker_settings, name=f"webhooks-{uuid.uuid4().hex[:6]}")
            broker.add_consumer(broker_settings.webhooks_queue, WebhookDeliverer(
                sender=client, broker=broker, policy=CallbackPolicy(settings),
                webhooks_queue=broker_settings.webhooks_queue,
                schedule=RetrySchedule(broker_settings.webhook_retry_delays), metrics=metrics,
            ), prefetch=settings.prefetch)
            async with broker:
                await broker.wait_connected(10)
                yield broker, metrics

    return start


def notice_to(url: str) -> WebhookNotice:
    task_id = str(uuid.uuid4())
    body = json.dumps({"type": "task.completed", "data": {"taskId": task_id}}).encode()
    return WebhookNotice(webhook_id(task_id), task_id, url, time.time(), body)


async def queue(broker: Broker, notice: WebhookNotice, run_environment: dict[str, str]) -> None:
    await broker.publish(run_environment["WEBHOOKS_QUEUE"], notice.encode(), message_id=notice.webhook_id)


async def wait(receiver: WebhookReceiver, webhook: str, timeout: float = 10.0) -> None:
    await asyncio.to_thread(receiver.wait_for, webhook, timeout)


async def calls_of(receiver: WebhookReceiver, webhook: str, count: int, timeout: float = 10.0) -> None:
    await asyncio.to_thread(receiver.wait_for, lambda call: call.webhook_id == webhook
                            and call.attempt >= count, timeout)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_webhook_is_delivered_signed_with_the_specs_headers(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    async with delivering() as (broker, metrics):
        notice = notice_to(receiver.url + "?token=secret")
        await queue(broker, notice, run_environment)
        await wait(receiver, notice.webhook_id)
        await until(lambda: metrics.deliveries.labels(outcome="delivered")._value.get() == 1)
    [call] = receiver.calls(notice.webhook_id)
    assert call.verified and call.body == notice.body and call.path == "/webhooks?token=secret"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["user-agent"] == USER_AGENT
    assert abs(int(call.timestamp) - time.time()) < 5
    assert 0 < metrics.latency._sum.get() < 5


async def test_a_500_is_retried_through_the_delay_queue_and_then_delivered(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    waiting = delay_queue(run_environment["WEBHOOKS_QUEUE"], RETRY_SECONDS)
    async with delivering() as (broker, _):
        notice = notice_to(receiver.url)
        receiver.answer(500)
        await queue(broker, notice, run_environment)
        await calls_of(receiver, notice.webhook_id, 1)
        await asyncio.sleep(0.2)
        # Waiting in the delay queue, which nobody consumes, and held by no consumer.
        assert await queue_state(run_environment["AMQP_URL"], waiting) == (1, 0)
        assert broker.in_flight == 0
        await wait(receiver, notice.webhook_id)
    first, second = receiver.calls(notice.webhook_id)
    assert (first.status, second.status, second.attempt, second.verified) == (500, 200, 2, True)
    pause = second.received_monotonic - first.received_monotonic
    assert (1 - 0.2) * RETRY_SECONDS - 0.05 <= pause <= RETRY_SECONDS + 1.0


async def test_410_stops_the_retries(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    async with delivering() as (broker, metrics):
        notice = notice_to(receiver.url)
        receiver.answer(410)
        await queue(broker, notice, run_environment)
        await calls_of(receiver, notice.webhook_id, 1)
        await asyncio.sleep(RETRY_SECONDS * 1.5)
    assert [call.status for call in receiver.calls(notice.webhook_id)] == [410]
    assert metrics.deliveries.labels(outcome="gone")._value.get() == 1


async def test_past_the_schedule_it_lands_on_the_dead_letter_queue(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    async with delivering(schedule="0.3,0.3") as (broker, metrics):
        notice = notice_to(receiver.url)
        receiver.answer(503, 503, 503, webhook_id=notice.webhook_id)
        await queue(broker, notice, run_environment)
        [dead] = await take_dead_letters(run_environment["AMQP_URL"], run_environment["WEBHOOKS_QUEUE"], 1, 10)
    assert WebhookNotice.decode(dead).attempt == 3
    assert [call.status for call in receiver.calls(notice.webhook_id)] == [503, 503, 503]
    assert metrics.dead_lettered.labels(reason="schedule_exhausted")._value.get() == 1


async def test_a_redirect_is_not_followed_and_is_dead_lettered(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    async with delivering() as (broker, metrics):
        notice = notice_to(receiver.url)
        receiver.answer(Answer(307, location=receiver.url_for("/elsewhere")))
        await queue(broker, notice, run_environment)
        [dead] = await take_dead_letters(run_environment["AMQP_URL"], run_environment["WEBHOOKS_QUEUE"], 1, 10)
    assert WebhookNotice.decode(dead).webhook_id == notice.webhook_id
    assert [call.path for call in receiver.received] == ["/webhooks"]
    assert metrics.dead_lettered.labels(reason="redirect")._value.get() == 1


async def test_a_host_resolving_to_loopback_is_refused_without_any_request(
        delivering: Delivering, receiver: WebhookReceiver, run_environment: dict[str, str]) -> None:
    async with delivering(WEBHOOK_ALLOW_PRIVATE="false") as (broker, metrics):
        notice = notice_to(f"https://localhost:{receiver.port}/webhooks")
        await queue(broker, notice, run_environment)
        [dead] = await take_dead_letters(run_environment["AMQP_URL"], run_environment["WEBHOOKS_QUEUE"], 1, 10)
    assert WebhookNotice.decode(dead).attempt == 1
    assert receiver.received == []
    assert metrics.attempts.labels(result="address_refused")._value.get() == 1
    assert metrics.dead_lettered.labels(reason="address_refused")._value.get() == 1
