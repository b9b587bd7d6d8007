"""Sanic's HTTP/1.1 protocol with the bounds a public server needs (``HttpServerSettings``).

Sanic 25 has no such bounds of its own, and a client controls every byte it sends:

- **A deadline for the whole request.** Sanic's ``REQUEST_TIMEOUT`` restarts with every byte,
  so a client sending a header line every few seconds (slowloris), or a body byte by byte,
  holds its connection for ever. Here a request's head and body must arrive within
  ``HTTP_REQUEST_DEADLINE_SECONDS`` of its first byte, or it is answered 408 and closed.
- **The request timeout covers the body.** Sanic reads a body after the head, in its handler
  stage, where only ``RESPONSE_TIMEOUT`` applies: a body shorter than its Content-Length waited
  60 s (an hour on the stub) and got a 503 (a 500 after the apps' error mapping). Here a pause of
  ``HTTP_REQUEST_TIMEOUT_SECONDS`` in a body is a 408, as it is in a head.
- **A connection cap.** ``HTTP_MAX_CONNECTIONS`` per process, never more than the process's
  file limit allows (less ``FILE_RESERVE`` kept for Redis, RabbitMQ, logs and metrics; the
  limit is raised to the system's hard limit first, ``open_files``). One
  more connection is answered at its first bytes with ``503`` ``Retry-After: 1``
  ``Connection: close`` and closed (or closed after ``REFUSAL_GRACE_SECONDS`` if it sends
  nothing): a client learns the server is full and when to retry, where a connection closed at
  accept would look like a crash, and the refused connection is never read past one TLS record
  nor held. Connections still in their TLS handshake are not counted: ``serving`` gives the
  handshake the request deadline too (uvloop's default is 60 s).
- **A lingering close after an answer given before the request's body arrived** (nginx's and
  Apache's "lingering close"). A body over ``REQUEST_MAX_SIZE`` is answered 413 from its
  Content-Length alone, and after any error answered before the body was read (an unknown path,
  a wrong method, a GET with a body) Sanic drains the body only up to the same limit. Past it,
  Sanic's cycle ends (``keep_alive`` false, 1 ms of sleep) and its connection task closes the
  transport, then aborts it as soon as its write buffer is empty: the socket is closed with the
  client's body still arriving, and a socket closed with unread bytes sends a TCP reset, which
  fails the client's upload before it reads the answer (Locust's status 0). Here, at the end of
  that cycle, the connection reads and discards what still comes, and only then lets Sanic close
  it, at the first of: the declared body in full (closed at once, so with no reset),
  ``LINGER_QUIET_SECONDS`` without a byte or the client's own close, ``LINGER_MAX_BYTES``
  discarded (checked per read, so up to one read buffer more), or ``LINGER_SECONDS`` after the
  answer. Nothing of the answer changes, nor of what follows it (``Connection: close``; no
  further request is read). A lingering connection holds its file descriptor and so stays
  counted in ``HTTP_MAX_CONNECTIONS``, but never takes the place of a new client: at the cap,
  the oldest lingering connection is closed at once (its answer is already sent) and the new one
  is admitted, before any is refused. Neither a refused connection nor a 408 lingers: at the cap
  nothing is held longer than needed, and a client too slow for its deadline is not waited for.
- **A request line Sanic cannot make a URL of** (``GET health``, a tab in the path,
  ``CONNECT host:port``): Sanic's error path builds its placeholder request from the same URL,
  fails again, drops the connection without an answer and logs a traceback at error level.
  Here the placeholder gets the URL ``*`` and the client its 400.

The timeouts are checked where Sanic checks its own, every half of the shortest timeout, so a
408 comes at most ``HTTP_REQUEST_TIMEOUT_SECONDS / 2`` after its bound.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from time import monotonic
from typing import Any

from sanic import Sanic
from sanic.exceptions import BadRequest, RequestTimeout
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from .instrumentation.prometheus import HttpServerMetrics
from .instrumentation.sanic_http import METRICS_CONFIG_KEY
from .open_files import FILE_RESERVE, open_file_limit
from .settings import HttpServerSettings

log = logging.getLogger(__name__)

LIMITS_CONFIG_KEY = "HTTP_CONNECTION_LIMITS"
LINGERING_CONFIG_KEY = "HTTP_LINGERING_CONNECTIONS"
REFUSAL_GRACE_SECONDS = 2.0
# The lingering close: nginx's lingering_time and lingering_timeout (30 s and 5 s there), lower
# here, where the bodies are small (API_MAX_BODY_BYTES 64 KiB, the stub's 1 MiB) and a client
# sends its body at once: a client uploading a few MiB still reads its 413, and none holds a
# connection more than LINGER_SECONDS past its answer.
LINGER_SECONDS = 2.0
LINGER_QUIET_SECONDS = 1.0
LINGER_MAX_BYTES = 1024 * 1024
OVERLOADED_BODY = b'{"code":503,"message":"Service is overloaded, retry later"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(OVERLOADED_BODY), OVERLOADED_BODY)
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What ``BoundedHttpProtocol`` enforces for one app (kept in its config)."""

    request_deadline_seconds: float
    max_connections: int


def connection_cap(configured: int, files: int | None) -> int:
    """``configured``, lowered so that the connections leave ``FILE_RESERVE`` of ``files``."""
    if files is None:
        return configured
    return max(1, min(configured, files - FILE_RESERVE))


def apply_limits(app: Sanic[Any, Any], settings: HttpServerSettings) -> None:
    """Give ``app`` the timeouts and limits of ``settings``, for ``BoundedHttpProtocol``."""
    app.config.REQUEST_TIMEOUT = settings.request_timeout_seconds
    app.config.KEEP_ALIVE_TIMEOUT = settings.keep_alive_timeout_seconds
    cap = connection_cap(settings.max_connections, open_file_limit())
    if cap < settings.max_connections:
        log.warning("HTTP_MAX_CONNECTIONS lowered to what the open-file limit allows",
                    extra={"configured": settings.max_connections, "max_connections": cap})
    app.config[LIMITS_CONFIG_KEY] = ConnectionLimits(settings.request_deadline_seconds, cap)
    app.config[LINGERING_CONFIG_KEY] = LingeringConnections()


def body_pending(http: Http) -> bool:
    """Bytes of the request body are still to come (Content-Length 0 has none)."""
    # True, "chunked" or None, whatever Sanic's annotation says; unset before the first request.
    body: object = getattr(http, "request_body", None)
    return body == "chunked" or bool(body and http.request_bytes_left)


def receiving(http: Http) -> bool:
    """The connection waits for the client's request: its head, or the rest of its body (read
    before the handler runs, or drained after the answer)."""
    return http.stage is Stage.REQUEST or (
        http.stage in (Stage.HANDLER, Stage.IDLE) and body_pending(http))


class LingeringConnections:
    """One app's connections in their lingering close, oldest first (per process, as the cap)."""

    def __init__(self) -> None:
        self._connections: dict[BoundedHttpProtocol, None] = {}  # a dict keeps their order

    def add(self, connection: BoundedHttpProtocol) -> None:
        self._connections[connection] = None

    def discard(self, connection: BoundedHttpProtocol) -> None:
        self._connections.pop(connection, None)

    def make_room(self, connections: set[Any]) -> bool:
        """Close the oldest lingering connection at once and take it out of ``connections`` (the
        server's, which the cap counts), for a new connection; False when none lingers."""
        oldest = next(iter(self._connections), None)
        if oldest is None:
            return False
        self.discard(oldest)
        connections.discard(oldest)
        oldest.abort()  # type: ignore[no-untyped-call]  # its task is cancelled at connection_lost
        return True


class BoundedHttp(Http):
    """Sanic's HTTP/1.1 cycle, remembering when each request's first byte came, answering a
    request line with an unusable URL with 400, and lingering before the close that follows an
    answer given while the request's body was still arriving."""

    __slots__ = ("request_started",)

    def __init__(self, protocol: Any) -> None:
        super().__init__(protocol)  # type: ignore[no-untyped-call]
        self.request_started = monotonic()

    async def http1_request_header(self) -> None:
        # Called as soon as the first byte of a request is in the buffer.
        self.request_started = monotonic()
        await super().http1_request_header()  # type: ignore[no-untyped-call]

    def create_empty_request(self) -> None:
        try:
            super().create_empty_request()
        except BadRequest:  # the request line's URL is no URL: answer as for "*"
            self.url = None
            super().create_empty_request()

    async def http1(self) -> None:
        await super().http1()  # type: ignore[no-untyped-call]
        # Sanic's cycle ends with the body still set only where it answered and then gave up
        # draining the body (the body over the limit, or malformed): its connection_task closes
        # next. A 408 (check_timeouts) and a lost connection have no body left to wait for.
        protocol = self.protocol
        if (self.request_body and self.stage is Stage.IDLE and not self.upgrade_websocket
                and isinstance(protocol, BoundedHttpProtocol) and protocol.may_linger()):
            await protocol.linger(self)

    def unread_body_bytes(self) -> int | None:
        """What the client declared and has not yet sent of the body: its Content-Length less
        what was read (the buffer still holds some of it); None for a chunked body."""
        body: object = self.request_body  # True or "chunked", whatever Sanic's annotation says
        return self.request_bytes_left if body is True else None


class BoundedHttpProtocol(HttpProtocol):
    """``HttpProtocol`` with the request deadline, the body timeout and the connection cap of
    the app's ``ConnectionLimits`` (``apply_limits``); without them, Sanic's own behaviour."""

    HTTP_CLASS = BoundedHttp
    __slots__ = ("_limits", "_lingering", "_refusal")

    def _setup(self) -> None:
        super()._setup()  # type: ignore[no-untyped-call]
        self._limits: ConnectionLimits | None = self.app.config.get(LIMITS_CONFIG_KEY)
        self._lingering: LingeringConnections | None = self.app.config.get(LINGERING_CONFIG_KEY)
        self._refusal: asyncio.TimerHandle | None = None

    def _metrics(self) -> HttpServerMetrics | None:
        metrics: HttpServerMetrics | None = self.app.config.get(METRICS_CONFIG_KEY)
        return metrics

    # -- the connection cap -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        limits, metrics = self._limits, self._metrics()
        if limits is not None and self._full(limits):
            self.transport = transport
            self._refusal = self.loop.call_later(REFUSAL_GRACE_SECONDS, self._refuse)
            if metrics is not None:
                metrics.refused_connections.inc()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]
        if metrics is not None:
            metrics.open_connections.set(len(self.connections))

    def _full(self, limits: ConnectionLimits) -> bool:
        """The process holds its cap of connections, and none lingers to give its place."""
        if len(self.connections) < limits.max_connections:
            return False
        return self._lingering is None or not self._lingering.make_room(self.connections)

    def _refuse(self) -> None:
        """Answer 503 and close: at the refused connection's first bytes, or its grace's end."""
        if self._refusal is not None:
            self._refusal.cancel()
            self._refusal = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(REFUSAL)
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            self._refuse()
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn_info is None:  # a refused connection: nothing of Sanic's was set up
            if self._refusal is not None:
                self._refusal.cancel()
                self._refusal = None
            self.transport = None
            return
        if self._lingering is not None:
            self._lingering.discard(self)
        super().connection_lost(exc)  # type: ignore[no-untyped-call]
        metrics = self._metrics()
        if metrics is not None:
            metrics.open_connections.set(len(self.connections))

    # -- the lingering close ------------------------------------------------------------

    def may_linger(self) -> bool:
        """Served with the app's limits, and the connection is still open."""
        transport = self.transport
        return (self._lingering is not None and transport is not None
                and not transport.is_closing()
                and self.conn_info is not None and not self.conn_info.lost)

    async def linger(self, http: BoundedHttp) -> None:
        """Read and discard the rest of ``http``'s body until it is all in or a bound ends it;
        the caller (Sanic's connection task) closes the connection next."""
        assert self._lingering is not None
        unread = http.unread_body_bytes()
        http.request_body = None  # given up: no more a request being received (check_timeouts)
        buffer, loop = self.recv_buffer, self.loop
        until = loop.time() + LINGER_SECONDS
        discarded = 0
        self._lingering.add(self)
        try:
            while True:
                discarded += len(buffer)
                del buffer[:]
                quiet_until = min(until, loop.time() + LINGER_QUIET_SECONDS)
                transport = self.transport
                if (discarded >= LINGER_MAX_BYTES or (unread is not None and discarded >= unread)
                        or quiet_until <= loop.time() or transport is None
                        or transport.is_closing()):
                    return
                try:
                    async with asyncio.timeout_at(quiet_until):
                        await self.receive_more()  # type: ignore[no-untyped-call]
                except TimeoutError:
                    return
        finally:
            self._lingering.discard(self)

    # -- the request deadline and the body timeout --------------------------------------

    def check_timeouts(self) -> None:
        http: BoundedHttp | None = self.http
        if self._limits is None or not self._task or http is None or not receiving(http):
            super().check_timeouts()  # type: ignore[no-untyped-call]
            return
        try:
            now = monotonic()
            if (now - self._time > self.request_timeout
                    or now - http.request_started > self._limits.request_deadline_seconds):
                http.exception = RequestTimeout("Request Timeout")
                # No waiting for the rest of the body after the 408 (Sanic drains a body it did
                # not read before it closes the connection): the connection closes at once.
                http.request_body = None
                self._task.cancel()
            interval = min(self.keep_alive_timeout, self.request_timeout, self.response_timeout) / 2
            self._callback_check_timeouts = self.loop.call_later(
                max(0.1, interval), self.check_timeouts)
        except Exception:
            log.exception("checking a connection's timeouts failed")
