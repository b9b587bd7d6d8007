"""Service B's typed application context: the settings, and the resources of this process."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import TypeAlias

from opentelemetry.sdk.trace import TracerProvider
from sanic import Request, Sanic
from sanic.config import Config

from ..idempotency import IdempotencyStore
from ..messaging import Broker
from ..serialization import Serializer
from ..settings import ApiSettings
from ..store import TaskStore
from ..telemetry.metrics import ApiMetrics
from ..webhooks.callback_url import CallbackPolicy
from ..webhooks.outbox import WebhookOutbox
from .guards import InFlight
from .waiters import Waiters

MIN_CLAIM_SECONDS = 30


def claim_seconds(settings: ApiSettings) -> int:
    """How long an Idempotency-Key claim lasts: longer than the slowest create (two Redis
    writes, the publish confirm, a tombstone), at least ``MIN_CLAIM_SECONDS``."""
    slowest_create = 3 * settings.redis.socket_timeout_seconds + settings.broker.publish_timeout_seconds
    return max(MIN_CLAIM_SECONDS, math.ceil(2 * slowest_create))


class ServiceContext:
    """Opened by the ``before_server_start`` listener, closed by ``after_server_stop``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.metrics = ApiMetrics()
        self.in_flight = InFlight(settings.max_in_flight)
        self.callback_policy = CallbackPolicy(settings.webhooks)
        self.tracer_provider: TracerProvider | None = None
        self._store: TaskStore | None = None
        self._broker: Broker | None = None
        self._idempotency: IdempotencyStore | None = None
        self._serializer: Serializer | None = None
        self._waiters: Waiters | None = None
        self._outbox: WebhookOutbox | None = None

    def attach(self, store: TaskStore, broker: Broker, waiters: Waiters) -> None:
        self._store, self._broker, self._waiters = store, broker, waiters
        # Shares the task store's Redis pool, and so its lifetime: closing the store closes it.
        self._idempotency = IdempotencyStore(
            store.redis,
            key_prefix=self.settings.redis.key_prefix,
            ttl_seconds=self.settings.idempotency.ttl_seconds,
            claim_seconds=claim_seconds(self.settings),
        )
        self._serializer = Serializer.over(store, broker, self.settings.broker, self.metrics.turns)
        self._outbox = WebhookOutbox(store, broker, self.settings.broker.webhooks_queue,
                                     on_queued=self.metrics.completion.webhooks_queued.inc)

    def detach(self) -> tuple[TaskStore | None, Broker | None, Waiters | None]:
        store, broker, waiters = self._store, self._broker, self._waiters
        self._store = self._broker = self._waiters = None
        self._idempotency = None
        self._serializer = None
        self._outbox = None
        return store, broker, waiters

    @property
    def store(self) -> TaskStore:
        if self._store is None:
            raise RuntimeError("the task store is used outside the server's lifetime")
        return self._store

    @property
    def idempotency(self) -> IdempotencyStore:
        if self._idempotency is None:
            raise RuntimeError("the idempotency store is used outside the server's lifetime")
        return self._idempotency

    @property
    def serializer(self) -> Serializer:
        if self._serializer is None:
            raise RuntimeError("the serializer is used outside the server's lifetime")
        return self._serializer

    @property
    def waiters(self) -> Waiters:
        if self._waiters is None:
            raise RuntimeError("the waiters are used outside the server's lifetime")
        return self._waiters

    @property
    def outbox(self) -> WebhookOutbox:
        if self._outbox is None:
            raise RuntimeError("the webhook outbox is used outside the server's lifetime")
        return self._outbox

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("the broker is used outside the server's lifetime")
        return self._broker


ServiceApp: TypeAlias = Sanic[Config, ServiceContext]
ServiceRequest: TypeAlias = Request[ServiceApp, SimpleNamespace]
