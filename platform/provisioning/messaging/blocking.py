"""RabbitMQ's blocked-connection notifications (its memory and disk alarms), per connection.

When a node of the cluster runs low on memory or disk, RabbitMQ raises a resource alarm and
stops reading from every connection that publishes, cluster-wide, until the alarm clears. It
blocks a connection at its first publish while an alarm is in effect (3.10's ``rabbit_reader``:
``publish_received``) and tells clients that announce the ``connection.blocked`` capability
(aiormq does) with ``connection.blocked``, then ``connection.unblocked`` when every alarm has
cleared (https://www.rabbitmq.com/docs/connection-blocked). Nothing sent on a blocked
connection is read meanwhile: a publish would wait for its confirm until its timeout, a channel
open or a ``basic.get`` for their answer.

aiormq 7.2 handles both frames (it logs them, and its ``Connection.ready()`` waits for the
unblock) but tells nobody. ``BlockAwareConnection`` overrides its two handlers, name-mangled
private methods of ``aiormq.Connection`` (hence their spelled-out names; a unit test fails if an
aiormq upgrade renames them), to also drive a ``Blocking``: the state of one connection, which
the publisher reads before each publish and which cuts short the publishes waiting for their
confirm when the block arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiormq
import aiormq.abc
from aiormq import spec

from ..errors import BrokerBlockedRefused

log = logging.getLogger(__name__)

BlockingListener = Callable[[str | None], None]
"""Called with the broker's reason ("low on memory") when blocked, None when unblocked."""


class Blocking:
    """Whether RabbitMQ blocks one connection's publishing, and why. A new connection starts
    unblocked: make one ``Blocking`` per connection."""

    def __init__(self, listener: BlockingListener | None = None) -> None:
        self._reason: str | None = None
        self._listener = listener
        self._waits: set[asyncio.Timeout] = set()
        self._unblocked = asyncio.Event()
        self._unblocked.set()

    @property
    def blocked(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """The broker's reason while blocked ("low on memory", "low on disk"), else None."""
        return self._reason

    def block(self, reason: str) -> None:
        """``connection.blocked`` arrived: cut short every wait under ``cut_short``."""
        self._reason = reason or "blocked"
        self._unblocked.clear()
        try:
            if self._waits:
                now = asyncio.get_running_loop().time()
                for wait in self._waits:
                    # One cut short by an earlier block may still be unwinding (blocked,
                    # unblocked, blocked again): an expiring timeout refuses a new deadline, and
                    # raising here would kill aiormq's frame reader, hence the connection.
                    if not wait.expired():
                        wait.reschedule(now)
        finally:
            if self._listener is not None:
                self._listener(self._reason)

    def unblock(self) -> None:
        """``connection.unblocked`` arrived (every alarm cleared)."""
        self._reason = None
        self._unblocked.set()
        if self._listener is not None:
            self._listener(None)

    def refusal(self, what: str) -> BrokerBlockedRefused:
        """The error for ``what`` refused while blocked (raised before anything is sent)."""
        return BrokerBlockedRefused(f"RabbitMQ blocks {what} ({self._reason})",
                                    unblocked=self.unblocked)

    async def unblocked(self) -> None:
        """Return once this connection is not blocked (at once if it is not). A connection
        lost while blocked never unblocks: wait with a timeout."""
        await self._unblocked.wait()

    @contextmanager
    def cut_short(self, wait: asyncio.Timeout) -> Iterator[None]:
        """Inside, a block makes ``wait`` (an entered ``asyncio.timeout``) expire at once: the
        awaited operation is cancelled and ``wait`` raises ``TimeoutError``, its ``expired()``
        true."""
        self._waits.add(wait)
        try:
            yield
        finally:
            self._waits.discard(wait)


class BlockAwareConnection(aiormq.Connection):
    """An ``aiormq.Connection`` that reports ``connection.blocked`` and ``connection.unblocked``
    to its ``Blocking`` besides handling them as aiormq does."""

    def __init__(self, url: str, *, blocking: Blocking, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.blocking = blocking

    async def _Connection__handle_connection_blocked(self, frame: spec.Connection.Blocked) -> None:
        # mypy does not see aiormq's private methods under their mangled names.
        await super()._Connection__handle_connection_blocked(frame)  # type: ignore[misc]
        self.blocking.block(frame.reason or "")

    async def _Connection__handle_connection_unblocked(self, frame: spec.Connection.Unblocked) -> None:
        await super()._Connection__handle_connection_unblocked(frame)  # type: ignore[misc]
        self.blocking.unblock()


HANDLERS = ("_Connection__handle_connection_blocked", "_Connection__handle_connection_unblocked")
"""The private methods of ``aiormq.Connection`` that ``BlockAwareConnection`` overrides."""


async def connect(url: str, *, client_properties: dict[str, Any], blocking: Blocking
                  ) -> aiormq.abc.AbstractConnection:
    """Open a connection that drives ``blocking`` (the ``Broker``'s default ``Connector``)."""
    connection = BlockAwareConnection(url, blocking=blocking, client_properties=client_properties)
    await connection.connect()
    return connection
