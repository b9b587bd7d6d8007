"""The address guard: a host is refused when any address it resolves to is refused."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from provisioning.settings import WebhookSettings
from provisioning.webhooks.callback_url import CallbackPolicy
from provisioning.webhooks.resolver import AddressRefused, GuardedResolver, refused_by_guard


class FixedResolver(AbstractResolver):
    """A DNS that answers the given addresses for every host."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
                for address in self.addresses]

    async def close(self) -> None:
        self.closed = True


def policy(*, allow_private: bool) -> CallbackPolicy:
    return CallbackPolicy(WebhookSettings(
        allowed_hosts=("*",), allow_http=False, allow_private=allow_private, secrets=(b"k" * 24,),
        timeout_seconds=5.0, prefetch=8, ca_file=None))


async def test_public_addresses_are_returned_as_resolved() -> None:
    resolver = GuardedResolver(policy(allow_private=False), FixedResolver("93.184.216.34"))
    results = await resolver.resolve("example.com", 443)
    assert [result["host"] for result in results] == ["93.184.216.34"]


@pytest.mark.parametrize(("addresses", "reason"), [
    (("93.184.216.34", "127.0.0.1"), "private"),
    (("10.1.2.3",), "private"),
    (("::1",), "private"),
    (("169.254.169.254",), "link-local"),
    (("fe80::1",), "link-local"),
    (("::ffff:169.254.169.254",), "link-local"),
    (("224.0.0.1",), "reserved"),
    (("0.0.0.0",), "reserved"),
])
async def test_a_host_is_refused_when_any_address_is_refused(addresses: tuple[str, ...], reason: str) -> None:
    resolver = GuardedResolver(policy(allow_private=False), FixedResolver(*addresses))
    with pytest.raises(AddressRefused) as refused:
        await resolver.resolve("receiver.example", 443)
    assert refused.value.reason == reason


async def test_private_addresses_pass_with_allow_private_but_link_local_never() -> None:
    allowed = GuardedResolver(policy(allow_private=True), FixedResolver("127.0.0.1", "10.0.0.1"))
    assert len(await allowed.resolve("receiver.example", 443)) == 2
    metadata = GuardedResolver(policy(allow_private=True), FixedResolver("169.254.169.254"))
    with pytest.raises(AddressRefused):
        await metadata.resolve("receiver.example", 443)


async def test_address_literals_are_checked_too() -> None:
    resolver = GuardedResolver(policy(allow_private=False), FixedResolver())
    with pytest.raises(AddressRefused):
        resolver.check_literal("[::1]")
    resolver.check_literal("93.184.216.34")
    resolver.check_literal("receiver.example")  # a name: the resolver's business


async def test_closing_closes_the_wrapped_resolver() -> None:
    inner = FixedResolver()
    await GuardedResolver(policy(allow_private=False), inner).close()
    assert inner.closed


def test_the_refusal_is_found_behind_aiohttps_wrapping() -> None:
    refusal = AddressRefused("h", "private")
    try:
        try:
            raise refusal
        except AddressRefused as error:
            raise ConnectionError("wrapped") from error
    except ConnectionError as wrapped:
        assert refused_by_guard(wrapped) is refusal
    assert refused_by_guard(ConnectionError("other")) is None
