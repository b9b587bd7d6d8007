"""The address guard: a webhook is sent only to addresses ``CallbackPolicy`` allows.

``GuardedResolver`` is the delivering session's aiohttp resolver. It resolves a host with
aiohttp's own resolver, then refuses the whole host when ANY address it resolved to is refused
(``CallbackPolicy.address_refusal``: link-local never, multicast/unspecified/reserved never,
private and loopback only with ``WEBHOOK_ALLOW_PRIVATE``). aiohttp then connects to exactly
the addresses checked here, so a second, different DNS answer (DNS rebinding) cannot slip in
between the check and the connection. Refusing the whole host rather than filtering it keeps
one answer's meaning simple: a receiver that mixes internal and public addresses is refused.

aiohttp does not ask the resolver about address literals (``https://10.0.0.1/``), so
``check_literal`` applies the same rule to them before a request is made.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .callback_url import CallbackPolicy, IpAddress


class AddressRefused(OSError):
    """The receiver's host is, or resolves to, an address webhooks must not be sent to.
    An ``OSError`` so aiohttp handles it like a failed resolution (wrapped in
    ``ClientConnectorDNSError``); ``refused_by_guard`` finds it again."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"webhook host {host} refused: {reason} address")
        self.host = host
        self.reason = reason


class GuardedResolver(AbstractResolver):
    def __init__(self, policy: CallbackPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = self._policy.address_refusal(ipaddress.ip_address(result["host"]))
            if refusal is not None:
                raise AddressRefused(host, refusal)
        if not results:
            raise OSError(f"webhook host {host} resolved to no address")
        return results

    async def close(self) -> None:
        await self._inner.close()

    def check_literal(self, host: str) -> None:
        """Raise ``AddressRefused`` when ``host`` is an address literal that is refused."""
        literal = _literal(host)
        if literal is not None and (refusal := self._policy.address_refusal(literal)) is not None:
            raise AddressRefused(host, refusal)


def refused_by_guard(error: BaseException) -> AddressRefused | None:
    """The ``AddressRefused`` behind an aiohttp error, if that is what it is."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
