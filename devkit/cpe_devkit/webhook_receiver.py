"""A webhook receiver over HTTPS for tests, Locust and the benchmark.

It serves every path under ``https://127.0.0.1:{port}/`` with the platform's server certificate
(``provisioning.certs``), verifies each delivery's signature with the Standard Webhooks
reference library (``standardwebhooks``: an independent check of the platform's signer), and
records it. Answers can be scripted: a queue of statuses for any call, or per webhook id
(default 200), with optional ``Retry-After`` and ``Location`` headers.

A plain ``ThreadingHTTPServer`` in a daemon thread, so it works under asyncio tests (nothing
blocks their loop) and under Locust's gevent (the threads and sockets are monkey-patched)::

    with WebhookReceiver(cert_dir, secret) as receiver:
        receiver.answer(500, 200)                      # the next two calls
        ...create a task with callbackUrl=receiver.url...
        delivery = receiver.wait_for(webhook_id, timeout=10)
        assert delivery.verified and delivery.attempt == 2
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .ports import free_port

SECRET_PREFIX = "whsec_"
MAX_BODY_BYTES = 1024 * 1024


def new_secret(size: int = 32) -> str:
    """A fresh signing secret in Standard Webhooks' form (``WEBHOOK_SECRET``)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver answers to one call."""

    status: int = 200
    retry_after: str | None = None  # seconds or an HTTP date
    location: str | None = None  # for a 3xx

    @classmethod
    def of(cls, answer: Answer | int) -> Answer:
        return answer if isinstance(answer, Answer) else cls(answer)


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """One call the receiver got, and how it answered."""

    path: str
    webhook_id: str
    timestamp: str  # the webhook-timestamp header, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes
    event: Any  # the body parsed as JSON, None when it is not JSON
    verified: bool  # the signature checks out with the receiver's secret
    attempt: int  # 1 for this webhook id's first call, then 2, ...
    received_monotonic: float
    received_wall: float
    status: int  # the status the receiver answered

    @property
    def data(self) -> Any:
        """The event's ``data`` (the task's detail), or None."""
        return self.event.get("data") if isinstance(self.event, dict) else None


Match = str | Callable[[ReceivedWebhook], bool]


class WebhookReceiver:
    """An HTTPS webhook receiver on a free loopback port; a context manager."""

    def __init__(self, cert_dir: Path, secret: str, *, host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self._cert_dir = Path(cert_dir)
        self._verifier = Webhook(secret)
        self._host = host
        self._port = port or free_port()
        self._lock = threading.Condition()
        self._received: list[ReceivedWebhook] = []
        self._calls: defaultdict[str, int] = defaultdict(int)
        self._answers: deque[Answer] = deque()
        self._answers_by_id: defaultdict[str, deque[Answer]] = defaultdict(deque)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._server is not None:
            return
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._cert_dir / "server.pem", self._cert_dir / "server-key.pem")
        server = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
        server.daemon_threads = True
        # The TLS handshake happens in each connection's own thread (``Handler.setup``), not in
        # the accepting one: a burst of deliveries is not served one handshake at a time.
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"webhook-receiver-{self._port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        """The receiver's webhook URL: give it as ``callbackUrl``."""
        return self.url_for("/webhooks")

    def url_for(self, path: str) -> str:
        """Another path of this receiver (every path is served and recorded)."""
        return f"https://{self._host}:{self._port}{path}"

    @property
    def port(self) -> int:
        return self._port

    # -- scripting answers ----------------------------------------------------------------

    def answer(self, *answers: Answer | int, webhook_id: str | None = None) -> None:
        """Queue answers for the next calls (of ``webhook_id``, or of any webhook); calls with
        nothing queued are answered 200. Per-id answers win over the shared queue."""
        with self._lock:
            queue = self._answers if webhook_id is None else self._answers_by_id[webhook_id]
            queue.extend(Answer.of(answer) for answer in answers)

    # -- what was received ----------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._received)

    def calls(self, webhook_id: str) -> list[ReceivedWebhook]:
        """Every call of one webhook id, oldest first."""
        return [call for call in self.received if call.webhook_id == webhook_id]

    def wait_for(self, match: Match, timeout: float = 10.0) -> ReceivedWebhook:
        """The first call answered 2xx that matches (a webhook id, or a predicate); waits up to
        ``timeout`` seconds for it, then raises ``TimeoutError``."""
        predicate = _predicate(match)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for call in self._received:
                    if predicate(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching webhook within {timeout}s "
                                       f"({len(self._received)} call(s) received)")
                self._lock.wait(min(left, 0.5))

    # -- serving --------------------------------------------------------------------------

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Record one call; the answer to give it."""
        webhook_id = headers.get("webhook-id", "")
        try:
            event = self._verifier.verify(body, headers)
            verified = True
        except (WebhookVerificationError, ValueError):
            verified = False
            event = _json_or_none(body)
        with self._lock:
            answers = self._answers_by_id.get(webhook_id)
            answer = answers.popleft() if answers else (
                self._answers.popleft() if self._answers else Answer())
            self._calls[webhook_id] += 1
            call = ReceivedWebhook(
                path=path, webhook_id=webhook_id, timestamp=headers.get("webhook-timestamp", ""),
                headers=headers, body=body, event=event, verified=verified,
                attempt=self._calls[webhook_id], received_monotonic=time.monotonic(),
                received_wall=time.time(), status=answer.status)
            self._received.append(call)
            self._lock.notify_all()
        return answer


def _predicate(match: Match) -> Callable[[ReceivedWebhook], bool]:
    if isinstance(match, str):
        return lambda call: call.webhook_id == match and 200 <= call.status < 300
    return match


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # a connection that stalls (handshake or request) is dropped

        def setup(self) -> None:
            super().setup()
            assert isinstance(self.request, ssl.SSLSocket)
            self.request.do_handshake()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY_BYTES))
            headers = {name.lower(): value for name, value in self.headers.items()}
            scripted = receiver._receive(self.path, headers, body)
            self.send_response(scripted.status)
            if scripted.retry_after is not None:
                self.send_header("Retry-After", scripted.retry_after)
            if scripted.location is not None:
                self.send_header("Location", scripted.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests and Locust read ``received`` instead

    return Handler
