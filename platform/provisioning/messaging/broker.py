"""The connection supervisor: one AMQP connection per process that heals by itself.

aiormq has no automatic reconnection, so ``Broker`` supervises its connection, the way
aio-pika's robust connection does: it connects, declares the topology, opens a publishing
channel with publisher confirms and one channel per registered consumer, then waits for any
of them to close. When one does, it reconnects after a pause of the one ``Backoff`` policy
(reset by every successful connection), declares the topology again and resumes every
consumer.

With several brokers (``AMQP_URL`` listing a cluster's nodes) each process walks its own
shuffled order of them (``addresses.BrokerAddresses``): a lost connection or a failed attempt
moves it to the next node, and the backoff pauses come after a lost connection and after a
whole round of failed attempts, not between the nodes of one round. It logs the node it is
connected to (host:port, never credentials).

While it is disconnected, ``publish`` fails at once with ``BrokerNotConnected`` rather than
waiting: Service B answers 500 instead of hanging a client. A publish the broker nacked (or
did not confirm in time) renews the publishing channel, in place: on RabbitMQ 3.10 a channel
that published to a quorum queue while its leader's node was dying nacks every later publish
to it, for as long as it lives, while a new channel publishes again as soon as a new leader is
elected (``tests/faults/test_rabbitmq_cluster.py`` measured both).

While RabbitMQ blocks the connection (a memory or disk alarm, ``blocking``), ``publish`` and
the side channels fail at once with ``BrokerBlockedRefused`` (Service B answers 503 with
``Retry-After``; the worker holds its result and retries), a publish waiting for its confirm
when the block arrives ends with ``BrokerBlocked``, and the publishing channel is not renewed
for either (it is sound; a channel open would wait unread until the alarm clears). The state
belongs to the connection: a new connection starts unblocked (RabbitMQ blocks it again at its
first publish if the alarm is still on). ``blocked`` says why while it lasts, and the
``provisioning_amqp_blocked`` gauge follows it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiormq
import aiormq.abc
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from ..backoff import Backoff
from ..errors import BrokerBlocked, BrokerNotConnected, BrokerUnavailable
from ..settings import BrokerSettings
from ..telemetry.metrics import BrokerMetrics
from .addresses import BrokerAddresses
from .blocking import Blocking
from .blocking import connect as connect_block_aware
from .connection_errors import CONNECTION_ERRORS, cancelled_here
from .delivery import MessageHandler
from .inbound import InboundPolicy
from .publisher import ConfirmingPublisher
from .topology import declare_topology, parking_arguments

log = logging.getLogger(__name__)


class Connector(Protocol):
    """How a connection is made: ``blocking.connect`` (``aiormq``'s connection, reporting its
    blocked state to ``blocking``), or a test's fake."""

    async def __call__(self, url: str, *, client_properties: dict[str, Any], blocking: Blocking
                      ) -> aiormq.abc.AbstractConnection: ...


@dataclass(slots=True)
class _Consumer:
    """A registered consumer and its attachment to the current connection, if any."""

    inbound: InboundPolicy
    prefetch: int
    channel: aiormq.abc.AbstractChannel | None = None
    consumer_tag: str | None = None


@dataclass(slots=True)
class FetchedMessage:
    """A message taken with ``basic.get`` on a channel of its own, unacked until ``settle``:
    closing the channel (``release``, or the process dying) puts it back in its queue."""

    body: bytes
    headers: dict[str, Any]
    _channel: aiormq.abc.AbstractChannel = field(repr=False)
    _delivery_tag: int = 0

    async def settle(self, *, delete_queue: str | None = None) -> None:
        """Ack the message, then (optionally) delete its queue, and close the channel."""
        try:
            await self._channel.basic_ack(self._delivery_tag)
            if delete_queue is not None:
                await self._channel.queue_delete(delete_queue)
        finally:
            await self.release()

    async def release(self) -> None:
        if not self._channel.is_closed:
            try:
                await self._channel.close()
            except CONNECTION_ERRORS as error:
                log.debug("closing a fetch channel: %r", error)


class Broker:
    """A self-healing AMQP connection: publish with confirms, consume with manual acks."""

    def __init__(
        self, settings: BrokerSettings, *, name: str, metrics: BrokerMetrics | None = None,
        connect: Connector = connect_block_aware, rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._name = name
        self._metrics = metrics
        self._open: Connector = connect
        self._addresses = BrokerAddresses(settings.urls, rng=rng)
        self._reconnect = Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds)
        self._consumers: list[_Consumer] = []
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._blocking = Blocking()
        self._renewing = asyncio.Lock()
        self._renewals: set[asyncio.Task[None]] = set()
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

    @property
    def node(self) -> str | None:
        """host:port of the broker this process is connected to; None while disconnected."""
        return self._addresses.node if self.connected else None

    @property
    def blocked(self) -> str | None:
        """RabbitMQ's reason ("low on memory", "low on disk") while it blocks this process's
        publishing (a resource alarm); None otherwise, and while disconnected."""
        return self._blocking.reason if self.connected else None

    @property
    def addresses(self) -> list[str]:
        """This process's order of the broker URLs (shuffled once, at construction)."""
        return list(self._addresses.urls)

    async def close(self) -> None:
        """Close the connection; messages not yet acked go back to their queue. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for renewal in self._renewals:
            renewal.cancel()
        await asyncio.gather(*self._renewals, return_exceptions=True)
        await self._close_connection()

    # -- consuming ------------------------------------------------------------------------

    def add_consumer(self, queue: str, handler: MessageHandler, *, prefetch: int) -> None:
        """Register a consumer; it is (re)attached on every connection. Call before start."""
        inbound = InboundPolicy(
            queue, handler, max_message_bytes=self._settings.max_message_bytes, metrics=self._metrics
        )
        self._consumers.append(_Consumer(inbound=inbound, prefetch=prefetch))
        if self._metrics is not None:
            self._metrics.watch_queue(queue)

    @property
    def in_flight(self) -> int:
        return sum(len(consumer.inbound.in_flight) for consumer in self._consumers)

    async def stop_consuming(self) -> None:
        """Cancel every consumer so no new message arrives; held ones stay to be finished."""
        self._consuming = False
        for consumer in self._consumers:
            if consumer.channel is not None and consumer.consumer_tag is not None:
                try:
                    await consumer.channel.basic_cancel(consumer.consumer_tag)
                except CONNECTION_ERRORS as error:
                    log.info("consumer of %s already gone: %s", consumer.inbound.queue, error)
                consumer.consumer_tag = None

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for held messages to finish; returns those left."""
        tasks = {task for consumer in self._consumers for task in consumer.inbound.in_flight}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return self.in_flight

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, queue: str, body: bytes, *, message_id: str,
                      headers: Mapping[str, Any] | None = None,
                      expiration_ms: int | None = None) -> None:
        """Publish a persistent message and return once the broker confirmed it (see
        ``ConfirmingPublisher``); fails at once with ``BrokerNotConnected`` while disconnected
        and with ``BrokerBlockedRefused`` while RabbitMQ blocks the connection."""
        publisher = self._publisher
        if publisher is None or not self.connected:
            raise BrokerNotConnected("not connected to RabbitMQ")
        try:
            await publisher.publish(queue, body, message_id=message_id, headers=headers,
                                    expiration_ms=expiration_ms)
        except BrokerBlocked:
            raise  # the channel is sound: nothing to renew
        except BrokerUnavailable:
            self._renew_in_background(publisher)
            raise

    def _renew_in_background(self, failed: ConfirmingPublisher) -> None:
        """Renew the publishing channel without holding the publish that found it failed: on a
        stalled connection the renewal itself waits (up to PUBLISH_TIMEOUT_SECONDS), and every
        create would wait behind it, past its own bound."""
        if self._closed:
            return
        renewal = asyncio.create_task(self._renew_publisher(failed))
        self._renewals.add(renewal)
        renewal.add_done_callback(self._renewal_done)

    def _renewal_done(self, renewal: asyncio.Task[None]) -> None:
        self._renewals.discard(renewal)
        if not renewal.cancelled() and (error := renewal.exception()) is not None:
            # Never silent: the next failed publish tries again.
            log.error("renewing the publishing channel failed", exc_info=error,
                      extra={"component": self._name})

    async def _renew_publisher(self, failed: ConfirmingPublisher) -> None:
        """Replace the publishing channel after a nack or a confirm timeout (once per channel,
        however many publishes failed on it); nothing when the connection is going anyway."""
        async with self._renewing:
            connection = self._connection
            if (self._publisher is not failed or connection is None or not self.connected
                    or self._blocking.blocked):
                return
            try:
                channel = await connection.channel(
                    publisher_confirms=True, timeout=self._settings.publish_timeout_seconds)
            except (*CONNECTION_ERRORS, RuntimeError) as error:  # RuntimeError: aiormq's "closed"
                log.info("cannot renew the publishing channel: %r", error)
                return
            except asyncio.CancelledError:
                if cancelled_here():
                    raise
                # aiormq cancels what waits on a connection it gives up (a missed heartbeat).
                log.info("cannot renew the publishing channel: its connection was given up")
                return
            self._publisher = ConfirmingPublisher(
                channel, timeout_seconds=self._settings.publish_timeout_seconds,
                blocking=self._blocking, metrics=self._metrics)
            log.warning("publishing channel renewed after a failed publish (%s)",
                        self._addresses.node, extra={"component": self._name})
        await _close_quietly(failed.channel)

    async def declare_parking(self, queue: str, ttl_seconds: int) -> None:
        """Declare a parking queue (serialize mode, ``topology.parking_queue``); safe to repeat."""
        channel = await self._side_channel()
        try:
            await channel.queue_declare(queue, durable=True, arguments=parking_arguments(ttl_seconds))
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"cannot declare {queue}: {error!r}") from error
        finally:
            await _close_quietly(channel)

    async def fetch(self, queue: str) -> FetchedMessage | None:
        """Take one message of ``queue`` with ``basic.get`` (unacked); None when the queue is
        empty or does not exist. On a channel of its own: a missing queue closes the channel."""
        channel = await self._side_channel()
        try:
            message = await channel.basic_get(queue, no_ack=False)
        except ChannelNotFoundEntity:
            await _close_quietly(channel)
            return None
        except CONNECTION_ERRORS as error:
            await _close_quietly(channel)
            raise BrokerUnavailable(f"cannot get from {queue}: {error!r}") from error
        if not isinstance(message.delivery, spec.Basic.GetOk):
            await _close_quietly(channel)
            return None
        return FetchedMessage(message.body, dict(message.header.properties.headers or {}),
                              channel, message.delivery.delivery_tag or 0)

    async def delete_queue(self, queue: str) -> None:
        """Delete a queue (a parking queue no longer needed); nothing when it is gone already."""
        channel = await self._side_channel()
        try:
            await channel.queue_delete(queue)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"cannot delete {queue}: {error!r}") from error
        finally:
            await _close_quietly(channel)

    async def _side_channel(self) -> aiormq.abc.AbstractChannel:
        connection = self._connection
        if connection is None or not self.connected:
            raise BrokerNotConnected("not connected to RabbitMQ")
        if self._blocking.blocked:
            raise self._blocking.refusal("this connection")
        try:
            return await connection.channel()
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailable(f"cannot open a channel: {error!r}") from error

    # -- connection supervision -----------------------------------------------------------

    async def _supervise(self) -> None:
        pauses = self._reconnect.delays()
        first = True
        while not self._closed:
            failure: Exception | None = None
            was_connected = False
            node = self._addresses.node
            try:
                await self._connect(self._addresses.current)
                was_connected = True
                self._addresses.connected()
                extra = {"component": self._name, "amqp_node": node}
                if first:
                    log.info("connected to RabbitMQ at %s", node, extra=extra)
                else:
                    self.reconnects += 1
                    if self._metrics is not None:
                        self._metrics.reconnects.inc()
                    log.info("reconnected to RabbitMQ at %s", node, extra=extra)
                first = False
                pauses = self._reconnect.delays()
                await self._wait_until_broken()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Never stop supervising: a process without its broker connection is useless.
                failure = error
            finally:
                self._set_connected(False)
            pause = next(pauses) if self._addresses.failed(was_connected=was_connected) else 0.0
            if failure is not None:
                self._report(failure, pause, node)
            await self._close_connection()
            await asyncio.sleep(pause)

    def _report(self, failure: Exception, pause: float, node: str) -> None:
        extra = {"component": self._name, "amqp_node": node}
        following = self._addresses.node
        then = f"retrying in {pause:.1f}s at {following}" if pause else f"trying {following} now"
        if isinstance(failure, ChannelPreconditionFailed):
            log.error(
                "RabbitMQ at %s refuses the queue declaration: a queue of that name exists with "
                "other arguments (QUEUE_DELIVERY_LIMIT or DEAD_LETTER_TTL_SECONDS changed?); "
                "delete it or use other queue names. %s: %s", node, then.capitalize(), failure,
                extra=extra,
            )
        elif isinstance(failure, CONNECTION_ERRORS):
            log.warning("RabbitMQ at %s unavailable, %s: %r", node, then, failure, extra=extra)
        else:
            log.error("unexpected error on the RabbitMQ connection to %s, %s", node, then,
                      exc_info=failure, extra=extra)

    async def _connect(self, url: str) -> None:
        """Connect, declare, open the channels: within AMQP_CONNECT_TIMEOUT_SECONDS (a silent
        network would otherwise hold aiormq's handshake until the kernel gives up)."""
        async with asyncio.timeout(self._settings.connect_timeout_seconds):
            await self._connect_unbounded(url)

    async def _connect_unbounded(self, url: str) -> None:
        blocking = Blocking(lambda reason: self._blocking_changed(blocking, reason))
        self._blocking = blocking
        connection = await self._open(url, client_properties={"connection_name": self._name},
                                      blocking=blocking)
        self._connection = connection
        await declare_topology(connection, self._settings)
        channel = await connection.channel(publisher_confirms=True)
        self._publisher = ConfirmingPublisher(
            channel, timeout_seconds=self._settings.publish_timeout_seconds, blocking=blocking,
            metrics=self._metrics,
        )
        for consumer in self._consumers:
            await self._attach(connection, consumer)
        self._set_connected(True)

    def _blocking_changed(self, blocking: Blocking, reason: str | None) -> None:
        if blocking is not self._blocking:
            return  # a frame of a connection already given up
        extra = {"component": self._name, "amqp_node": self._addresses.node}
        if reason is not None:
            log.warning("RabbitMQ at %s blocks publishing (%s): publishes are refused until it "
                        "unblocks", self._addresses.node, reason, extra=extra)
        else:
            log.warning("RabbitMQ at %s unblocked publishing", self._addresses.node, extra=extra)
        if self._metrics is not None:
            self._metrics.blocked.set(0 if reason is None else 1)

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
        ok = await channel.basic_consume(consumer.inbound.queue, consumer.inbound, no_ack=False)
        consumer.consumer_tag = ok.consumer_tag

    async def _wait_until_broken(self) -> None:
        assert self._connection is not None
        while True:
            publisher = self._publisher
            # ``closing`` gives a new observer at every call: keep the publisher's to compare.
            publisher_closing = publisher.channel.closing if publisher else None
            watched = [self._connection.closing]
            watched += [publisher_closing] if publisher_closing is not None else []
            watched += [c.channel.closing for c in self._consumers if c.channel is not None]
            done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for observer in pending:
                observer.cancel()  # stops the observer only
            if publisher is not self._publisher and done == {publisher_closing}:
                continue  # the publishing channel was replaced on purpose (_renew_publisher)
            break
        for future in done:
            reason = future.exception() if not future.cancelled() else None
            log.warning("RabbitMQ connection or channel closed (%s): %r", self._addresses.node,
                        reason, extra={"component": self._name})

    async def _close_connection(self) -> None:
        connection, self._connection, self._publisher = self._connection, None, None
        self._blocking = Blocking()  # the next connection starts unblocked
        if self._metrics is not None:
            self._metrics.blocked.set(0)
        for consumer in self._consumers:
            consumer.channel = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except CONNECTION_ERRORS as error:
                log.debug("closing the RabbitMQ connection: %r", error)


async def _close_quietly(channel: aiormq.abc.AbstractChannel) -> None:
    if not channel.is_closed:
        try:
            await channel.close()
        except CONNECTION_ERRORS as error:
            log.debug("closing a side channel: %r", error)
