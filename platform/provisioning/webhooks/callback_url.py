"""What a ``callbackUrl`` may be: the SSRF guard's rules, in one place.

Service B checks the URL itself when a create carries one (a precise 400, nothing stored):
the scheme (``https``; ``http`` too with ``WEBHOOK_ALLOW_HTTP``), no credentials or fragment,
a host that ``WEBHOOK_ALLOWED_HOSTS`` allows (exact names, ``*.suffix`` for subdomains, or
``*``), and, for an address literal, an address that may be called. The delivering process
applies ``address_refusal`` again to every address the host resolves to, right before it
connects to one of them, so DNS cannot steer a delivery elsewhere. Link-local (cloud metadata),
multicast, unspecified and reserved addresses are never called; private and loopback ones only
with ``WEBHOOK_ALLOW_PRIVATE``. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..errors import InvalidRequest
from ..settings import WebhookSettings

CALLBACK_FIELD = "callbackUrl"
MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackPolicy:
    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._schemes = ("https", "http") if settings.allow_http else ("https",)

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def check(self, url: object) -> str:
        """The URL when a webhook may go there; ``InvalidRequest`` saying why not."""
        if not self.enabled:
            raise InvalidRequest("callbackUrl is not enabled on this server")
        if not isinstance(url, str) or not url:
            raise InvalidRequest("callbackUrl must be a non-empty string")
        if len(url) > MAX_URL_LENGTH:
            raise InvalidRequest(f"callbackUrl must be at most {MAX_URL_LENGTH} characters long")
        if not url.isascii() or not url.isprintable() or " " in url:
            raise InvalidRequest("callbackUrl must be ASCII without spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InvalidRequest("callbackUrl is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in self._schemes:
            allowed = " or ".join(f"{name}://" for name in self._schemes)
            raise InvalidRequest(f"callbackUrl must start with {allowed}")
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest("callbackUrl must not carry credentials (user:password@)")
        if parts.fragment:
            raise InvalidRequest("callbackUrl must not have a fragment (#...)")
        host = (parts.hostname or "").lower()
        if not host or port == 0:
            raise InvalidRequest("callbackUrl must name a host (and a port from 1 to 65535)")
        if not self.host_allowed(host):
            raise InvalidRequest("callbackUrl host is not allowed on this server")
        literal = _address(host)
        if literal is not None:
            refusal = self.address_refusal(literal)
            if refusal is not None:
                raise InvalidRequest(f"callbackUrl address is not allowed ({refusal})")
        return url

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for allowed in self._settings.allowed_hosts:
            if allowed == "*" or host == allowed:
                return True
            if allowed.startswith("*.") and host.endswith(allowed[1:]):
                return True
        return False

    def address_refusal(self, address: IpAddress) -> str | None:
        """Why a webhook must not be sent to ``address``, or None when it may."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local:
            return "link-local"
        # ::1 lies in IPv6's reserved ::/8: loopback is judged as private, not as reserved.
        if address.is_multicast or address.is_unspecified or (
                address.is_reserved and not address.is_loopback):
            return "reserved"
        if not address.is_global and not self._settings.allow_private:
            return "private"
        return None


def parse_callback_url(body: object, policy: CallbackPolicy) -> str | None:
    """A create body's ``callbackUrl``, checked; None when absent or null."""
    if not isinstance(body, dict) or body.get(CALLBACK_FIELD) is None:
        return None
    return policy.check(body[CALLBACK_FIELD])


def _address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
