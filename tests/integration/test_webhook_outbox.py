"""When a final task's webhook is queued, against the real Redis and RabbitMQ: the store hands
the callbackUrl to whoever holds the final trigger until the webhook is marked queued, and the
outbox puts one notice on the webhooks queue per task."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from provisioning.api.results import ResultRecorder
from provisioning.messaging import Broker
from provisioning.models import FailureReason, ResultMessage, TaskStatus
from provisioning.settings import BrokerSettings
from provisioning.store import CancelOutcome, TaskStore
from provisioning.telemetry.metrics import ApiMetrics
from provisioning.webhooks.notice import WebhookNotice, webhook_id
from provisioning.webhooks.outbox import WebhookOutbox

CALLBACK = "https://receiver.example.com/hooks/provisioning?tenant=7"


def device() -> str:
    return f"HOOK{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def broker(broker_settings: BrokerSettings) -> AsyncIterator[Broker]:
    async with Broker(broker_settings, name=f"test-{uuid.uuid4().hex[:8]}") as broker:
        await broker.wait_connected(10)
        yield broker


@pytest.fixture
def outbox(store: TaskStore, broker: Broker, broker_settings: BrokerSettings) -> WebhookOutbox:
    return WebhookOutbox(store, broker, broker_settings.webhooks_queue)


async def queued_notices(broker: Broker, queue: str) -> list[WebhookNotice]:
    notices = []
    while (message := await broker.fetch(queue)) is not None:
        notices.append(WebhookNotice.decode(message.body))
        await message.settle()
    return notices


@dataclass
class HeldResult:
    """A result message held by its handler (the InboundDelivery a consumer gets)."""

    body: bytes
    message_id: str | None = None
    redelivered: bool = False
    deliverable: bool = True
    fates: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.fates.append("ack")

    async def requeue(self) -> None:
        self.fates.append("requeue")

    async def dead_letter(self, reason: str) -> None:
        self.fates.append(f"dead_letter:{reason}")


async def test_the_callback_is_handed_over_by_every_final_trigger_until_its_webhook_is_queued(
    store: TaskStore, outbox: WebhookOutbox, broker: Broker, broker_settings: BrokerSettings,
) -> None:
    task = str(uuid.uuid4())
    await store.create(task, device(), callback_url=CALLBACK)
    assert (await store.transition(task, TaskStatus.RUNNING)).callback_url is None
    final = await store.transition(task, TaskStatus.COMPLETED, attempts=1)
    assert final.callback_url == CALLBACK
    # A duplicated result (or a crash before the publish): still due.
    assert (await store.transition(task, TaskStatus.COMPLETED, attempts=1)).callback_url == CALLBACK
    await outbox.queue(task, CALLBACK)
    assert (await store.transition(task, TaskStatus.COMPLETED, attempts=1)).callback_url is None
    assert (await store.transition(task, TaskStatus.RUNNING)).callback_url is None

    [notice] = await queued_notices(broker, broker_settings.webhooks_queue)
    assert (notice.webhook_id, notice.task_id, notice.url, notice.attempt) == (
        webhook_id(task), task, CALLBACK, 1)
    event = json.loads(notice.body)
    assert event["type"] == "task.completed"
    assert event["data"]["taskId"] == task and event["data"]["status"] == "completed"
    assert event["timestamp"] == event["data"]["finishedAt"]
    record = await store.get(task)
    assert record is not None and record.finished_at == notice.final_at


async def test_a_cancel_hands_over_the_callback_of_the_task_it_makes_final(
    store: TaskStore, outbox: WebhookOutbox, broker: Broker, broker_settings: BrokerSettings,
) -> None:
    task, equipment_id = str(uuid.uuid4()), device()
    await store.create(task, equipment_id, callback_url=CALLBACK)
    cancellation = await store.cancel(task, equipment_id)
    assert (cancellation.outcome, cancellation.callback_url) == (CancelOutcome.CANCELLED, CALLBACK)
    # A retried DELETE, before the webhook was queued, hands it over again; after, no more.
    assert (await store.cancel(task, equipment_id)).callback_url == CALLBACK
    await outbox.queue(task, CALLBACK)
    assert (await store.cancel(task, equipment_id)) == (CancelOutcome.ALREADY_FINAL,
                                                        TaskStatus.CANCELLED, None)
    [notice] = await queued_notices(broker, broker_settings.webhooks_queue)
    assert json.loads(notice.body)["type"] == "task.cancelled"


async def test_a_task_without_a_callback_hands_nothing_over(store: TaskStore) -> None:
    task, equipment_id = str(uuid.uuid4()), device()
    await store.create(task, equipment_id)
    assert (await store.transition(task, TaskStatus.FAILED, FailureReason.SERVICE_A_UNAVAILABLE,
                                   attempts=3)).callback_url is None
    running, runner = str(uuid.uuid4()), device()
    await store.create(running, runner)
    await store.transition(running, TaskStatus.RUNNING)
    assert (await store.cancel(running, runner)) == (CancelOutcome.REQUESTED, TaskStatus.RUNNING, None)


async def test_a_task_whose_create_answered_500_gets_no_webhook(
    store: TaskStore, outbox: WebhookOutbox, broker: Broker, broker_settings: BrokerSettings,
) -> None:
    task = str(uuid.uuid4())
    await store.create(task, device(), callback_url=CALLBACK)
    tombstone = await store.tombstone(task)
    assert tombstone.callback_url == CALLBACK
    await outbox.queue(task, CALLBACK)
    assert await queued_notices(broker, broker_settings.webhooks_queue) == []


async def test_the_results_consumer_queues_the_webhook_before_it_acks_the_result(
    store: TaskStore, outbox: WebhookOutbox, broker: Broker, broker_settings: BrokerSettings,
) -> None:
    task, equipment_id = str(uuid.uuid4()), device()
    await store.create(task, equipment_id, callback_url=CALLBACK)
    await store.transition(task, TaskStatus.RUNNING)
    recorder = ResultRecorder(store, ApiMetrics(), webhooks=outbox)
    result = ResultMessage(task, equipment_id, TaskStatus.FAILED, FailureReason.EQUIPMENT_NOT_FOUND,
                           attempts=1, finished_at=0.0)
    first, again = HeldResult(result.encode()), HeldResult(result.encode(), redelivered=True)
    await recorder(first)
    await recorder(again)  # a redelivery after the webhook was queued: acked, nothing more
    assert (first.fates, again.fates) == (["ack"], ["ack"])
    [notice] = await queued_notices(broker, broker_settings.webhooks_queue)
    event = json.loads(notice.body)
    assert (event["type"], event["data"]["failureReason"]) == ("task.failed", "equipment_not_found")
