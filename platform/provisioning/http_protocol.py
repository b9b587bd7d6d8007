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
REFUSAL_GRACE_SECONDS = 2.0
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


class BoundedHttp(Http):
    """Sanic's HTTP/1.1 cycle, remembering when each request's first byte came, and answering a
    request line with an unusable URL with 400."""

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


class BoundedHttpProtocol(HttpProtocol):
    """``HttpProtocol`` with the request deadline, the body timeout and the connection cap of
    the app's ``ConnectionLimits`` (``apply_limits``); without them, Sanic's own behaviour."""

    HTTP_CLASS = BoundedHttp
    __slots__ = ("_limits", "_refusal")

    def _setup(self) -> None:
        super()._setup()  # type: ignore[no-untyped-call]
        self._limits: ConnectionLimits | None = self.app.config.get(LIMITS_CONFIG_KEY)
        self._refusal: asyncio.TimerHandle | None = None

    def _metrics(self) -> HttpServerMetrics | None:
        metrics: HttpServerMetrics | None = self.app.config.get(METRICS_CONFIG_KEY)
        return metrics

    # -- the connection cap -------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        limits, metrics = self._limits, self._metrics()
        if limits is not None and len(self.connections) >= limits.max_connections:
            self.transport = transport
            self._refusal = self.loop.call_later(REFUSAL_GRACE_SECONDS, self._refuse)
            if metrics is not None:
                metrics.refused_connections.inc()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]
        if metrics is not None:
            metrics.open_connections.set(len(self.connections))

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
        super().connection_lost(exc)  # type: ignore[no-untyped-call]
        metrics = self._metrics()
        if metrics is not None:
            metrics.open_connections.set(len(self.connections))

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
