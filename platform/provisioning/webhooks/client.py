"""The HTTPS client of webhook receivers: one aiohttp session per delivering process.

A session of its own (not Service A's), so its connection limit, timeouts and trust are the
webhooks' own and a slow receiver never takes a Service A connection. It trusts the system's
CAs plus ``WEBHOOK_CA_FILE``, resolves through the address guard (``resolver``), never follows
redirects, ignores proxy variables (a proxy would connect where the guard never looked), and
makes one attempt per call: what happened is returned as an ``Attempt``, never raised.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from ..errors import SettingsError
from ..settings import WebhookSettings
from .callback_url import CallbackPolicy
from .notice import WebhookNotice
from .resolver import AddressRefused, GuardedResolver, refused_by_guard
from .signing import signature_headers

USER_AGENT = "cpe-provisioning-platform-webhooks/1.0 (+Standard Webhooks)"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one POST went. ``result`` is the attempts metric's label: 2xx, 3xx, 410, 429, 4xx,
    5xx, timeout, connection_error or address_refused."""

    result: str
    status: int | None = None
    retry_after: str | None = None  # the answer's Retry-After header, as sent
    detail: str = ""  # for the log: an error's type or a refusal's reason


def result_of_status(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (410, 429):
        return str(status)
    if 300 <= status < 400:
        return "3xx"
    if 400 <= status < 500:
        return "4xx"
    return "5xx"  # 5xx, and whatever else no receiver should answer (1xx, 6xx+): retried


class WebhookClient:
    """``post()`` makes one signed attempt. ``traced``: a CLIENT span per attempt (aiohttp's
    OpenTelemetry hooks), a child of the delivery's process span, which continues the task's
    trace from the message headers."""

    def __init__(self, settings: WebhookSettings, *, traced: bool) -> None:
        if not settings.secrets:
            raise ValueError("webhook deliveries need a signing secret (WEBHOOK_SECRET)")
        self._settings = settings
        self._key = settings.secrets[0]  # the first secret signs; the others only verify
        self._traced = traced
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookClient:
        self._resolver = GuardedResolver(CallbackPolicy(self._settings))
        connector = aiohttp.TCPConnector(
            ssl=client_context(self._settings),
            resolver=self._resolver,
            limit=self._settings.prefetch,  # one connection per delivery in flight at most
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
            raise_for_status=False,
            trust_env=False,
            trace_configs=[create_trace_config()] if self._traced else None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session (and with it the connector and resolver); safe to call twice."""
        session, self._session, self._resolver = self._session, None, None
        if session is not None:
            await session.close()

    async def post(self, notice: WebhookNotice, *, timestamp: int | None = None) -> Attempt:
        if self._session is None or self._resolver is None:
            raise RuntimeError("WebhookClient used outside 'async with'")
        headers = {
            **signature_headers(self._key, notice.webhook_id, notice.body, timestamp=timestamp),
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
        }
        try:
            self._resolver.check_literal(urlsplit(notice.url).hostname or "")
            async with self._session.post(notice.url, data=notice.body, headers=headers,
                                          allow_redirects=False) as response:
                # The answer's body is not read: the connection is dropped instead of reused
                # when it has one, so a receiver cannot make us read an endless answer.
                return Attempt(result_of_status(response.status), response.status,
                               response.headers.get("Retry-After"))
        except AddressRefused as refused:
            return Attempt("address_refused", detail=refused.reason)
        except TimeoutError:
            return Attempt("timeout", detail="timeout")
        except (aiohttp.ClientError, OSError) as error:
            behind = refused_by_guard(error)
            if behind is not None:
                return Attempt("address_refused", detail=behind.reason)
            return Attempt("connection_error", detail=type(error).__name__)


def client_context(settings: WebhookSettings) -> ssl.SSLContext:
    """The system's CAs, plus ``WEBHOOK_CA_FILE`` when set; TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if settings.ca_file is not None:
        if not settings.ca_file.is_file():
            raise SettingsError("WEBHOOK_CA_FILE", f"names {settings.ca_file}, which does not exist")
        context.load_verify_locations(cafile=str(settings.ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
