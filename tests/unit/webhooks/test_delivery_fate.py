"""The deliverer's fate table, one row per test, with fakes typed against its Protocols."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from provisioning.errors import BrokerUnavailable
from provisioning.settings import WebhookSettings
from provisioning.telemetry.metrics import WebhookMetrics
from provisioning.webhooks.callback_url import CallbackPolicy
from provisioning.webhooks.client import Attempt
from provisioning.webhooks.delivery import DelayedPublisher, WebhookDeliverer, WebhookSender
from provisioning.webhooks.notice import WebhookNotice
from provisioning.webhooks.retries import RetrySchedule

QUEUE = "hooks"
NOTICE = WebhookNotice("msg_1", "t-1", "https://hooks.example/in", 0.0, b"{}")


class ScriptedSender:
    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.posted: list[WebhookNotice] = []

    async def post(self, notice: WebhookNotice, *, timestamp: int | None = None) -> Attempt:
        self.posted.append(notice)
        return self.attempt


class RecordingBroker:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[tuple[str, WebhookNotice, int | None]] = []

    async def publish(self, queue: str, body: bytes, *, message_id: str,
                      expiration_ms: int | None = None) -> None:
        if self.fail:
            raise BrokerUnavailable("away")
        self.published.append((queue, WebhookNotice.decode(body), expiration_ms))


class HeldDelivery:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.message_id: str | None = "msg_1"
        self.redelivered = False
        self.fate: str | None = None

    @property
    def deliverable(self) -> bool:
        return self.fate is None

    async def ack(self) -> None:
        self.fate = "ack"

    async def requeue(self) -> None:
        self.fate = "requeue"

    async def dead_letter(self, reason: str) -> None:
        self.fate = f"dead_letter:{reason}"


def deliverer(attempt: Attempt, broker: RecordingBroker | None = None, *,
              hosts: tuple[str, ...] = ("hooks.example",)) -> tuple[WebhookDeliverer, WebhookMetrics]:
    metrics = WebhookMetrics(CollectorRegistry())
    sender: WebhookSender = ScriptedSender(attempt)
    publisher: DelayedPublisher = broker or RecordingBroker()
    settings = WebhookSettings(allowed_hosts=hosts, allow_http=False, allow_private=False,
                               secrets=(b"k" * 24,), timeout_seconds=5.0, prefetch=8, ca_file=None)
    return WebhookDeliverer(sender=sender, broker=publisher, policy=CallbackPolicy(settings),
                            webhooks_queue=QUEUE, schedule=RetrySchedule((1.0, 10.0)),
                            metrics=metrics, rng=random.Random(3)), metrics


def count(metrics: WebhookMetrics, name: str, **labels: str) -> float:
    counter = metrics.deliveries if name == "deliveries" else metrics.dead_lettered
    return float(counter.labels(**labels)._value.get())


@pytest.mark.parametrize(("attempt", "fate", "outcome"), [
    (Attempt("2xx", 204), "ack", "delivered"),
    (Attempt("410", 410), "ack", "gone"),
    (Attempt("3xx", 302), "dead_letter:redirect", "dead_lettered"),
    (Attempt("4xx", 400), "dead_letter:permanent_status", "dead_lettered"),
    (Attempt("address_refused", detail="private"), "dead_letter:address_refused", "dead_lettered"),
])
async def test_final_answers(attempt: Attempt, fate: str, outcome: str) -> None:
    handler, metrics = deliverer(attempt)
    delivery = HeldDelivery(NOTICE.encode())
    await handler(delivery)
    assert delivery.fate == fate
    assert count(metrics, "deliveries", outcome=outcome) == 1


@pytest.mark.parametrize("attempt", [Attempt("5xx", 503), Attempt("429", 429), Attempt("timeout"),
                                     Attempt("connection_error")])
async def test_a_transient_failure_publishes_the_next_attempt_to_its_delay_queue_then_acks(
        attempt: Attempt) -> None:
    broker = RecordingBroker()
    handler, metrics = deliverer(attempt, broker)
    delivery = HeldDelivery(NOTICE.encode())
    await handler(delivery)
    [(queue, following, expiration)] = broker.published
    assert queue == "hooks.delay.1000ms" and following.attempt == 2
    assert expiration is not None and 800 <= expiration <= 1000
    assert delivery.fate == "ack" and count(metrics, "deliveries", outcome="retried") == 1


async def test_retry_after_moves_the_retry_to_a_longer_delay_queue() -> None:
    broker = RecordingBroker()
    handler, _ = deliverer(Attempt("429", 429, retry_after="5"), broker)
    await handler(HeldDelivery(NOTICE.encode()))
    [(queue, _, expiration)] = broker.published
    assert queue == "hooks.delay.10000ms" and expiration is not None and 4000 <= expiration <= 5000


async def test_past_the_schedule_it_is_dead_lettered() -> None:
    broker = RecordingBroker()
    handler, metrics = deliverer(Attempt("5xx", 500), broker)
    delivery = HeldDelivery(NOTICE.next_attempt().next_attempt().encode())  # attempt 3 of 1 + 2
    await handler(delivery)
    assert broker.published == [] and delivery.fate == "dead_letter:schedule_exhausted"
    assert count(metrics, "dead_lettered", reason="schedule_exhausted") == 1


async def test_a_retry_that_cannot_be_published_is_requeued_not_acked() -> None:
    handler, _ = deliverer(Attempt("5xx", 500), RecordingBroker(fail=True))
    delivery = HeldDelivery(NOTICE.encode())
    await handler(delivery)
    assert delivery.fate == "requeue"


async def test_a_malformed_message_is_dead_lettered_without_any_request() -> None:
    handler, metrics = deliverer(Attempt("2xx", 200))
    delivery = HeldDelivery(b"{not json")
    await handler(delivery)
    assert delivery.fate == "dead_letter:malformed"
    assert count(metrics, "dead_lettered", reason="malformed") == 1


async def test_a_url_no_longer_allowed_is_dead_lettered_without_any_request() -> None:
    sender_attempt = Attempt("2xx", 200)
    handler, _ = deliverer(sender_attempt, hosts=("other.example",))
    delivery = HeldDelivery(NOTICE.encode())
    await handler(delivery)
    assert delivery.fate == "dead_letter:not_allowed"
    assert handler._sender.posted == []  # type: ignore[attr-defined]
