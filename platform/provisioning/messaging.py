"""RabbitMQ over aiormq: one connection per process that reconnects by itself.

aiormq has no automatic reconnection, so ``Broker`` supervises its connection: it connects,
declares the topology, opens a publishing channel with publisher confirms and one channel per
registered consumer, then waits for anything of that to close. When it does, it reconnects
with exponential backoff and jitter, declares the topology again and resumes every consumer.
While it is disconnected, ``publish`` fails at once with ``BrokerUnavailable`` rather than
waiting: Service B answers 500 instead of hanging a client.

Topology: each queue is a durable quorum queue with a delivery limit; a message that exceeds
it, or that a consumer rejects, is dead-lettered (at least once) through the default exchange
to ``{queue}.dead``, a durable quorum queue of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiormq
import aiormq.abc
from aiormq import spec
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, ChannelPreconditionFailed

from . import names
from .errors import BrokerNotConnected, BrokerUnavailable
from .settings import BrokerSettings
from .telemetry.amqp import process_span, publish_span
from .telemetry.metrics import BrokerMetrics, exemplar

log = logging.getLogger(__name__)

PERSISTENT = 2
MAX_HEADERS = 32  # ours are the trace context; a message with more is not one of ours
_CONNECTION_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, asyncio.TimeoutError)


def dead_letter_queue(queue: str) -> str:
    return f"{queue}{names.DEAD_LETTER_SUFFIX}"


def queue_arguments(queue: str, delivery_limit: int) -> dict[str, Any]:
    """Arguments of a work queue: quorum, bounded redeliveries, safe dead-lettering."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_arguments(ttl_seconds: int) -> dict[str, Any]:
    """Dead letters are kept for inspection, but not for ever: a task message carries the
    device's credentials, which must not stay at rest in the broker indefinitely."""
    return {"x-queue-type": "quorum", "x-message-ttl": ttl_seconds * 1000}


class Delivery:
    """One delivered message and the only three things a consumer may do with it."""

    __slots__ = ("_message", "_metrics", "queue", "settled")

    def __init__(
        self, message: aiormq.abc.DeliveredMessage, queue: str, metrics: BrokerMetrics | None = None
    ) -> None:
        self._message = message
        self._metrics = metrics
        self.queue = queue
        self.settled = False

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def headers(self) -> Mapping[str, Any]:
        return self._message.header.properties.headers or {}

    @property
    def message_id(self) -> str | None:
        return self._message.header.properties.message_id

    @property
    def redelivered(self) -> bool:
        return bool(getattr(self._message.delivery, "redelivered", False))

    @property
    def deliverable(self) -> bool:
        """False once the channel it came on is closed: the broker redelivers it then."""
        return not self.settled and not self._message.channel.is_closed

    @property
    def delivery_tag(self) -> int:
        return int(getattr(self._message.delivery, "delivery_tag", None) or 0)

    async def ack(self) -> None:
        await self._settle(self._message.channel.basic_ack(self.delivery_tag))

    async def requeue(self) -> None:
        await self._settle(self._message.channel.basic_nack(self.delivery_tag, requeue=True))

    async def dead_letter(self, reason: str) -> None:
        """Reject to the queue's dead-letter queue; ``reason`` is a low-cardinality label."""
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(queue=self.queue, reason=reason).inc()
        await self._settle(self._message.channel.basic_reject(self.delivery_tag, requeue=False))

    async def _settle(self, operation: Awaitable[Any]) -> None:
        self.settled = True
        try:
            await operation
        except _CONNECTION_ERRORS as error:
            # The channel is gone, so the broker requeues the message by itself.
            log.warning("could not settle a delivery, the broker will redeliver it: %s", error)


MessageHandler = Callable[[Delivery], Awaitable[None]]


@dataclass(slots=True)
class _Consumer:
    queue: str
    handler: MessageHandler
    prefetch: int
    channel: aiormq.abc.AbstractChannel | None = None
    consumer_tag: str | None = None
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)


class Broker:
    """A self-healing AMQP connection: publish with confirms, consume with manual acks."""

    def __init__(
        self, settings: BrokerSettings, *, name: str, metrics: BrokerMetrics | None = None
    ) -> None:
        self._settings = settings
        self._name = name
        self._metrics = metrics
        self._consumers: list[_Consumer] = []
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._publisher: aiormq.abc.AbstractChannel | None = None
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._consuming = True
        self._closed = False
        self.reconnects = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self, *, wait_seconds: float | None = None) -> None:
        """Start the supervisor; optionally wait until the first connection is up."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"{self._name}-amqp")
        if wait_seconds is not None:
            await self.wait_connected(wait_seconds)

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise BrokerUnavailable(f"no connection to RabbitMQ after {timeout:.0f}s") from None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def close(self) -> None:
        """Close the connection; messages not yet acked go back to their queue. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._close_connection()

    # -- consuming ------------------------------------------------------------------------

    def add_consumer(self, queue: str, handler: MessageHandler, *, prefetch: int) -> None:
        """Register a consumer; it is (re)attached on every connection. Call before start."""
        self._consumers.append(_Consumer(queue=queue, handler=handler, prefetch=prefetch))
        if self._metrics is not None:
            self._metrics.watch_queue(queue)

    @property
    def in_flight(self) -> int:
        return sum(len(consumer.in_flight) for consumer in self._consumers)

    async def stop_consuming(self) -> None:
        """Cancel every consumer so no new message arrives; held ones stay to be finished."""
        self._consuming = False
        for consumer in self._consumers:
            if consumer.channel is not None and consumer.consumer_tag is not None:
                try:
                    await consumer.channel.basic_cancel(consumer.consumer_tag)
                except _CONNECTION_ERRORS as error:
                    log.info("consumer of %s already gone: %s", consumer.queue, error)
                consumer.consumer_tag = None

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for held messages to finish; returns those left."""
        tasks = {task for consumer in self._consumers for task in consumer.in_flight}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return self.in_flight

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish a persistent message and return once the broker confirmed it."""
        channel = self._publisher
        if channel is None or not self.connected:
            raise BrokerNotConnected("not connected to RabbitMQ")
        with publish_span(queue, message_id, len(body)) as trace_headers:
            properties = spec.Basic.Properties(
                delivery_mode=PERSISTENT,
                content_type=names.CONTENT_TYPE_JSON,
                message_id=message_id,
                headers={**trace_headers, **(headers or {})},
            )
            started = time.perf_counter()
            try:
                confirmation = await channel.basic_publish(
                    body,
                    routing_key=queue,
                    properties=properties,
                    mandatory=True,
                    timeout=self._settings.publish_timeout_seconds,
                )
            except _CONNECTION_ERRORS as error:
                raise BrokerUnavailable(f"publish to {queue} failed: {error!r}") from error
            if not isinstance(confirmation, spec.Basic.Ack):
                raise BrokerUnavailable(f"publish to {queue} was not confirmed: {confirmation!r}")
            if self._metrics is not None:
                self._metrics.publish_confirm.labels(queue=queue).observe(
                    time.perf_counter() - started, exemplar=exemplar()
                )

    # -- connection supervision -----------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self._settings.reconnect_initial_seconds
        first = True
        while not self._closed:
            try:
                await self._connect()
                if not first:
                    self.reconnects += 1
                    if self._metrics is not None:
                        self._metrics.reconnects.inc()
                    log.info("reconnected to RabbitMQ", extra={"component": self._name})
                first = False
                delay = self._settings.reconnect_initial_seconds
                await self._wait_until_broken()
            except asyncio.CancelledError:
                raise
            except ChannelPreconditionFailed as error:
                log.error(
                    "RabbitMQ refuses the queue declaration: a queue of that name exists with other "
                    "arguments (QUEUE_DELIVERY_LIMIT or DEAD_LETTER_TTL_SECONDS changed?); delete "
                    "it or use other queue names. Retrying in %.1fs: %s", delay, error,
                    extra={"component": self._name},
                )
            except _CONNECTION_ERRORS as error:
                log.warning(
                    "RabbitMQ unavailable, retrying in %.1fs: %r",
                    delay,
                    error,
                    extra={"component": self._name},
                )
            except Exception:
                # Never stop supervising: a process without its broker connection is useless.
                log.exception("unexpected error on the RabbitMQ connection, retrying in %.1fs", delay,
                              extra={"component": self._name})
            finally:
                self._set_connected(False)
            await self._close_connection()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._settings.reconnect_max_seconds)

    async def _connect(self) -> None:
        connection = await aiormq.connect(
            self._settings.url, client_properties={"connection_name": self._name}
        )
        self._connection = connection
        publisher = await connection.channel(publisher_confirms=True)
        await self.declare_topology(publisher, self._settings)
        self._publisher = publisher
        for consumer in self._consumers:
            await self._attach(connection, consumer)
        self._set_connected(True)

    def _set_connected(self, connected: bool) -> None:
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        if self._metrics is not None:
            self._metrics.connected.set(1 if connected else 0)

    async def _attach(self, connection: aiormq.abc.AbstractConnection, consumer: _Consumer) -> None:
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=consumer.prefetch)
        consumer.channel = channel
        consumer.consumer_tag = None
        if not self._consuming:
            return

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            consumer.in_flight.add(task)
            delivery = Delivery(message, consumer.queue, self._metrics)
            if self._oversized(delivery):
                log.error("dead-lettering an oversized message", extra={
                    "queue": consumer.queue, "bytes": len(delivery.body),
                    "headers": len(delivery.headers), "message_id": delivery.message_id})
                consumer.in_flight.discard(task)
                await delivery.dead_letter("too_large")
                return
            try:
                with process_span(
                    consumer.queue, delivery.headers, delivery.message_id, delivery.delivery_tag
                ):
                    await consumer.handler(delivery)
            except Exception:
                # A handler bug must not hold the message forever: back to the queue it goes,
                # and past the delivery limit to the dead-letter queue.
                log.exception("consumer of %s failed; requeueing the message", consumer.queue,
                              extra={"message_id": delivery.message_id})
                if not delivery.settled:
                    await delivery.requeue()
            finally:
                consumer.in_flight.discard(task)

        ok = await channel.basic_consume(consumer.queue, on_message, no_ack=False)
        consumer.consumer_tag = ok.consumer_tag

    def _oversized(self, delivery: Delivery) -> bool:
        """Refused before any decoding: a body or header set no producer of ours would send."""
        return len(delivery.body) > self._settings.max_message_bytes or len(delivery.headers) > MAX_HEADERS

    async def _wait_until_broken(self) -> None:
        assert self._connection is not None
        watched = [self._connection.closing]
        watched += [self._publisher.closing] if self._publisher else []
        watched += [c.channel.closing for c in self._consumers if c.channel is not None]
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            reason = future.exception() if not future.cancelled() else None
            log.warning("RabbitMQ connection or channel closed: %r", reason)

    async def _close_connection(self) -> None:
        connection, self._connection, self._publisher = self._connection, None, None
        for consumer in self._consumers:
            consumer.channel = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except _CONNECTION_ERRORS as error:
                log.debug("closing the RabbitMQ connection: %r", error)

    @staticmethod
    async def declare_topology(
        channel: aiormq.abc.AbstractChannel, settings: BrokerSettings
    ) -> None:
        """Declare both work queues and their dead-letter queues; safe to repeat."""
        for queue in (settings.tasks_queue, settings.results_queue):
            await channel.queue_declare(
                dead_letter_queue(queue),
                durable=True,
                arguments=dead_letter_arguments(settings.dead_letter_ttl_seconds),
            )
            await channel.queue_declare(
                queue, durable=True, arguments=queue_arguments(queue, settings.delivery_limit)
            )
