"""The webhooks queue's handler: one delivery attempt per message, and the message's fate.

The worker pool delivers (``worker.process``): each worker process has a second consumer, on
the webhooks queue, with a channel, prefetch (``WEBHOOK_PREFETCH``) and HTTPS session of its
own. Deliveries are outbound HTTPS calls with retries, which is what the pool is built for, and
it already has the supervisor, metrics ports, graceful drain and deployment wiring; the
separate channel, prefetch and session keep a slow receiver from ever taking a Service A slot.

A message's fate, decided in ``WebhookDeliverer.__call__`` only::

    message cannot be decoded                     -> dead-letter       malformed
    URL no longer allowed (settings changed)      -> dead-letter       not_allowed
    host is / resolves to a refused address       -> dead-letter       address_refused
    2xx                                           -> ack               delivered (+ latency)
    410 Gone                                      -> ack               gone (the receiver said stop)
    3xx (never followed)                          -> dead-letter       redirect
    429, 5xx, timeout, connection error:
        schedule not used up                      -> next attempt published to its delay
                                                     queue (confirmed), then ack: retried
        schedule used up                          -> dead-letter       schedule_exhausted
        the retry could not be published          -> requeue (the delivery limit bounds it)
    other 4xx                                     -> dead-letter       permanent_status

Dead letters land on the webhooks queue's ``.dead`` queue with the attempt they stopped at. The
log names the receiver's host and status, never the URL's path or query, nor the body.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Protocol
from urllib.parse import urlsplit

from ..collaborators import InboundDelivery
from ..errors import DependencyUnavailable, InvalidMessage, InvalidRequest
from ..messaging.topology import delay_queue
from ..telemetry.metrics import WebhookMetrics
from .callback_url import CallbackPolicy
from .client import Attempt
from .notice import WebhookNotice
from .retries import RetrySchedule, retry_after_seconds

log = logging.getLogger(__name__)

RETRIED_RESULTS = frozenset({"429", "5xx", "timeout", "connection_error"})
DEAD_LETTERED_RESULTS = {"3xx": "redirect", "4xx": "permanent_status",
                         "address_refused": "address_refused"}


class WebhookSender(Protocol):
    """One signed POST of a notice (``WebhookClient``); never raises for the receiver's sake."""

    async def post(self, notice: WebhookNotice, *, timestamp: int | None = None) -> Attempt: ...


class DelayedPublisher(Protocol):
    """Publishes with confirms, optionally with a per-message expiration (``Broker``)."""

    async def publish(self, queue: str, body: bytes, *, message_id: str,
                      expiration_ms: int | None = None) -> None: ...


class WebhookDeliverer:
    def __init__(self, *, sender: WebhookSender, broker: DelayedPublisher, policy: CallbackPolicy,
                 webhooks_queue: str, schedule: RetrySchedule, metrics: WebhookMetrics,
                 rng: random.Random | None = None) -> None:
        self._sender = sender
        self._broker = broker
        self._policy = policy
        self._webhooks_queue = webhooks_queue
        self._schedule = schedule
        self._metrics = metrics
        self._rng = rng

    async def __call__(self, delivery: InboundDelivery) -> None:
        self._metrics.in_flight.inc()
        try:
            await self._deliver(delivery)
        finally:
            self._metrics.in_flight.dec()

    async def _deliver(self, delivery: InboundDelivery) -> None:
        try:
            notice = WebhookNotice.decode(delivery.body)
        except InvalidMessage as error:
            log.error("dead-lettering a malformed webhook message: %s", error,
                      extra={"message_id": delivery.message_id})
            await self._dead_letter(delivery, "malformed")
            return
        context = {"webhook_id": notice.webhook_id, "task_id": notice.task_id,
                   "attempt": notice.attempt, "host": urlsplit(notice.url).hostname}
        try:
            self._policy.check(notice.url)
        except InvalidRequest as refusal:
            log.warning("webhook URL no longer allowed: %s", refusal, extra=context)
            await self._dead_letter(delivery, "not_allowed")
            return
        attempt = await self._sender.post(notice)
        self._metrics.attempts.labels(result=attempt.result).inc()
        context |= {"status": attempt.status, "result": attempt.result}
        if attempt.result == "2xx":
            self._metrics.latency.observe(max(0.0, time.time() - notice.final_at))
            self._metrics.deliveries.labels(outcome="delivered").inc()
            log.info("webhook delivered", extra=context)
            await delivery.ack()
        elif attempt.result == "410":
            self._metrics.deliveries.labels(outcome="gone").inc()
            log.info("webhook receiver answered 410 Gone: not retried", extra=context)
            await delivery.ack()
        elif attempt.result in RETRIED_RESULTS:
            await self._retry(delivery, notice, attempt, context)
        else:
            reason = DEAD_LETTERED_RESULTS.get(attempt.result, "permanent_status")
            log.warning("webhook given up (%s): %s", reason, attempt.detail or attempt.status,
                        extra=context)
            await self._dead_letter(delivery, reason)

    async def _retry(self, delivery: InboundDelivery, notice: WebhookNotice, attempt: Attempt,
                     context: dict[str, object]) -> None:
        retry_after = retry_after_seconds(attempt.retry_after, now=time.time())
        retry = self._schedule.retry(notice.attempt, retry_after, rng=self._rng)
        if retry is None:
            log.warning("webhook given up after %d attempts", notice.attempt, extra=context)
            await self._dead_letter(delivery, "schedule_exhausted")
            return
        following = notice.next_attempt()
        try:
            await self._broker.publish(delay_queue(self._webhooks_queue, retry.delay),
                                       following.encode(), message_id=following.webhook_id,
                                       expiration_ms=retry.expiration_ms)
        except DependencyUnavailable as error:
            log.warning("webhook retry not scheduled, requeueing: %s", error, extra=context)
            await delivery.requeue()
            return
        self._metrics.deliveries.labels(outcome="retried").inc()
        log.info("webhook attempt failed (%s), retrying in %.1fs", attempt.detail or attempt.status,
                 retry.expiration_ms / 1000, extra=context)
        await delivery.ack()

    async def _dead_letter(self, delivery: InboundDelivery, reason: str) -> None:
        self._metrics.deliveries.labels(outcome="dead_lettered").inc()
        self._metrics.dead_lettered.labels(reason=reason).inc()
        await delivery.dead_letter(reason)
