"""A connection that RabbitMQ blocks (a memory or disk alarm): what the publisher and Service B's
contract do with it, driven through fakes typed as the real interfaces (the real broker's
alarms are in tests/integration/test_broker.py and tests/faults/test_broker_alarms.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import aiormq
import aiormq.abc
import pytest
from aiormq import spec
from sanic import Request

from provisioning.api.contract import OVERLOADED, error_answer
from provisioning.backoff import Backoff
from provisioning.collaborators import InboundDelivery
from provisioning.errors import (
    BrokerBlocked,
    BrokerBlockedRefused,
    BrokerNotConnected,
    BrokerUnavailable,
    ServiceOverloaded,
)
from provisioning.held_retry import retry_while_held
from provisioning.messaging.blocking import HANDLERS, BlockAwareConnection, Blocking
from provisioning.messaging.publisher import ConfirmingPublisher


class StalledChannel:
    """Stands for a confirm-mode channel: publishes wait for a confirm until ``confirm``."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.waiting = asyncio.Event()
        self.confirmed = asyncio.Event()

    async def basic_publish(self, body: bytes, *, routing_key: str, properties: Any,
                            mandatory: bool, timeout: float | None, wait: bool = True
                            ) -> spec.Basic.Ack:
        self.published.append(routing_key)
        self.waiting.set()
        async with asyncio.timeout(timeout):
            await self.confirmed.wait()
        return spec.Basic.Ack()


def publisher(channel: StalledChannel, blocking: Blocking, timeout: float = 30.0) -> ConfirmingPublisher:
    return ConfirmingPublisher(cast(aiormq.abc.AbstractChannel, channel), timeout_seconds=timeout,
                               blocking=blocking)


def test_aiormq_still_has_the_frame_handlers_we_override() -> None:
    missing = [name for name in HANDLERS if not hasattr(aiormq.Connection, name)]
    assert missing == [], f"aiormq renamed {missing}: BlockAwareConnection no longer sees blocks"


async def test_the_blocked_and_unblocked_frames_drive_the_connections_blocking_and_aiormqs_own() -> None:
    changes: list[str | None] = []
    connection = BlockAwareConnection("amqp://guest:guest@127.0.0.1:1/", blocking=Blocking(changes.append))
    blocked, unblocked = HANDLERS
    await getattr(connection, blocked)(spec.Connection.Blocked(reason="low on memory"))
    assert (connection.blocking.blocked, connection.blocking.reason) == (True, "low on memory")
    with pytest.raises(TimeoutError):  # aiormq's own handler ran too: ready() waits for the unblock
        await asyncio.wait_for(connection.ready(), 0.05)
    await getattr(connection, unblocked)(spec.Connection.Unblocked())
    assert (connection.blocking.blocked, connection.blocking.reason) == (False, None)
    assert changes == ["low on memory", None]


async def test_a_publish_while_blocked_is_refused_at_once_without_touching_the_channel() -> None:
    channel, blocking = StalledChannel(), Blocking()
    blocking.block("low on disk")
    with pytest.raises(BrokerBlockedRefused, match="low on disk"):
        await publisher(channel, blocking).publish("tasks", b"{}", message_id="t1")
    assert channel.published == []


async def test_a_publish_waiting_for_its_confirm_ends_at_once_when_the_block_arrives() -> None:
    channel, blocking = StalledChannel(), Blocking()
    waiting = asyncio.create_task(publisher(channel, blocking).publish("tasks", b"{}", message_id="t1"))
    await channel.waiting.wait()
    blocking.block("low on memory")
    with pytest.raises(BrokerBlocked, match="low on memory") as raised:
        await asyncio.wait_for(waiting, 5)  # far below the publisher's 30 s confirm timeout
    # It left this process: its fate is unknown, so it must not pass for one that never did.
    assert not isinstance(raised.value, BrokerNotConnected)


async def test_after_the_unblock_publishes_are_confirmed_again() -> None:
    channel, blocking = StalledChannel(), Blocking()
    blocking.block("low on memory")
    blocking.unblock()
    channel.confirmed.set()
    await publisher(channel, blocking).publish("tasks", b"{}", message_id="t1")
    assert channel.published == ["tasks"]


async def test_a_confirm_timeout_without_a_block_stays_a_plain_broker_unavailable() -> None:
    channel = StalledChannel()
    with pytest.raises(BrokerUnavailable) as raised:
        await publisher(channel, Blocking(), timeout=0.05).publish("tasks", b"{}", message_id="t1")
    assert not isinstance(raised.value, BrokerBlocked)


async def test_a_block_cuts_short_only_the_waits_still_running() -> None:
    blocking = Blocking()
    async with asyncio.timeout(None) as finished:
        with blocking.cut_short(finished):
            await asyncio.sleep(0)
    blocking.block("low on memory")
    await asyncio.sleep(0)
    assert not finished.expired()


async def test_a_block_arriving_while_a_cut_short_wait_still_unwinds_is_taken_calmly() -> None:
    # Alarms flapping at the watermark: blocked, unblocked, blocked again before the publish
    # cut short by the first block has left. An expiring timeout refuses a new deadline; were
    # that raised, it would kill aiormq's frame reader and with it the connection.
    heard: list[str | None] = []
    blocking = Blocking(heard.append)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as wait:
            with blocking.cut_short(wait):
                blocking.block("low on memory")
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    blocking.unblock()
                    blocking.block("low on disk")  # the wait is expiring now
                    raise
    assert heard == ["low on memory", None, "low on disk"]
    assert blocking.reason == "low on disk"


def test_every_blocked_error_is_a_broker_error_that_callers_already_retry_or_undo() -> None:
    # The worker's result publish and the outbox retry BrokerUnavailable while they hold the
    # message; a create undoes its record on BrokerNotConnected and tombstones it otherwise.
    assert issubclass(BrokerBlocked, BrokerUnavailable)
    assert issubclass(BrokerBlockedRefused, BrokerBlocked)
    assert issubclass(BrokerBlockedRefused, BrokerNotConnected)
    assert not issubclass(BrokerBlocked, BrokerNotConnected)


@pytest.mark.parametrize("error", [BrokerBlockedRefused("blocked"), BrokerBlocked("blocked")])
async def test_service_b_answers_a_blocked_broker_with_the_overloaded_503_and_retry_after(
    error: BrokerBlocked,
) -> None:
    response = await error_answer(cast(Request, None), error)
    assert response.status == 503
    assert json.loads(response.body or b"") == {"code": 503, "message": OVERLOADED}
    assert response.headers["Retry-After"] == str(BrokerBlocked.retry_after_seconds) == "5"


async def test_the_in_flight_limit_keeps_its_own_retry_after() -> None:
    response = await error_answer(cast(Request, None), ServiceOverloaded())
    assert (response.status, response.headers["Retry-After"]) == (503, "1")


class HeldDelivery:
    """Stands for a delivery its handler holds (never settled here)."""

    body = b"{}"
    message_id = "t1"
    redelivered = False
    deliverable = True

    async def ack(self) -> None: ...

    async def requeue(self) -> None: ...

    async def dead_letter(self, reason: str) -> None: ...


async def test_a_result_held_while_blocked_is_published_as_soon_as_the_connection_unblocks() -> None:
    channel, blocking = StalledChannel(), Blocking()
    channel.confirmed.set()
    blocking.block("low on memory")
    delivery: InboundDelivery = HeldDelivery()
    held = asyncio.create_task(retry_while_held(
        delivery, lambda: publisher(channel, blocking).publish("results", b"{}", message_id="t1"),
        retried=(BrokerUnavailable,), backoff=Backoff(initial_seconds=60, max_seconds=60),
        what="publishing the result", fields={"task_id": "t1"}))
    await asyncio.sleep(0.05)
    assert not held.done() and channel.published == []  # held, not dropped nor given up
    blocking.unblock()
    assert await asyncio.wait_for(held, 5) is True  # not after the 60 s pause
    assert channel.published == ["results"]
