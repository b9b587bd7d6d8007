"""Which callbackUrls a create may carry: every SSRF case of the policy."""

from __future__ import annotations

import pytest

from provisioning.errors import InvalidRequest
from provisioning.settings import WebhookSettings
from provisioning.webhooks.callback_url import MAX_URL_LENGTH, CallbackPolicy


def policy(hosts: tuple[str, ...] = ("*",), *, allow_http: bool = False,
           allow_private: bool = False) -> CallbackPolicy:
    return CallbackPolicy(WebhookSettings(
        allowed_hosts=hosts, allow_http=allow_http, allow_private=allow_private, secrets=(),
        timeout_seconds=5.0, prefetch=8, ca_file=None))


def refusal(check: CallbackPolicy, url: object) -> str:
    with pytest.raises(InvalidRequest) as refused:
        check.check(url)
    return str(refused.value)


def test_an_https_url_on_an_allowed_host_is_accepted_as_is() -> None:
    url = "https://hooks.example.com:8443/path?x=1"
    assert policy(("hooks.example.com",)).check(url) == url


def test_webhooks_are_refused_while_no_host_is_allowed() -> None:
    assert "not enabled" in refusal(policy(()), "https://hooks.example.com/")


def test_http_is_refused_unless_allowed() -> None:
    assert "must start with https://" in refusal(policy(), "http://hooks.example.com/")
    assert policy(allow_http=True).check("http://hooks.example.com/")


@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher", "javascript"])
def test_other_schemes_are_refused(scheme: str) -> None:
    assert "must start with" in refusal(policy(allow_http=True), f"{scheme}://hooks.example.com/")


def test_a_host_not_in_the_allowlist_is_refused() -> None:
    assert "host is not allowed" in refusal(policy(("hooks.example.com",)), "https://evil.example/")


def test_a_suffix_pattern_matches_subdomains_but_not_the_apex_nor_lookalikes() -> None:
    check = policy(("*.example.com",))
    assert check.check("https://a.example.com/")
    assert check.check("https://b.a.example.com/")
    assert "host is not allowed" in refusal(check, "https://example.com/")
    assert "host is not allowed" in refusal(check, "https://badexample.com/")


def test_host_names_match_whatever_their_case() -> None:
    assert policy(("hooks.example.com",)).check("https://HOOKS.Example.COM/")


def test_credentials_in_the_url_are_refused() -> None:
    assert "credentials" in refusal(policy(), "https://user:pass@hooks.example.com/")
    assert "credentials" in refusal(policy(), "https://user@hooks.example.com/")


def test_a_fragment_is_refused() -> None:
    assert "fragment" in refusal(policy(), "https://hooks.example.com/#top")


@pytest.mark.parametrize("url", ["https://hooks.example.com:0/", "https://hooks.example.com:65536/",
                                 "https://hooks.example.com:port/"])
def test_a_bad_port_is_refused(url: str) -> None:
    assert "callbackUrl" in refusal(policy(), url)


def test_a_url_longer_than_the_limit_is_refused() -> None:
    url = "https://hooks.example.com/" + "a" * MAX_URL_LENGTH
    assert f"at most {MAX_URL_LENGTH}" in refusal(policy(), url)


@pytest.mark.parametrize("url", [None, 42, "", ["https://hooks.example.com/"]])
def test_a_non_string_or_empty_url_is_refused(url: object) -> None:
    assert "non-empty string" in refusal(policy(), url)


@pytest.mark.parametrize("url", ["https://hooks.example.com/a b", "https://hooks.example.com/\n",
                                 "https://hööks.example.com/"])
def test_spaces_control_and_non_ascii_characters_are_refused(url: str) -> None:
    assert "ASCII" in refusal(policy(), url)


def test_no_host_is_refused() -> None:
    assert "must name a host" in refusal(policy(), "https:///path")


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data", "https://[fe80::1]/"])
def test_link_local_literals_are_refused_even_with_allow_private(url: str) -> None:
    assert "link-local" in refusal(policy(allow_private=True), url)


@pytest.mark.parametrize("url", ["https://10.0.0.1/", "https://127.0.0.1/", "https://[::1]/",
                                 "https://192.168.1.1/", "https://[fd00::1]/"])
def test_private_and_loopback_literals_are_refused_unless_allowed(url: str) -> None:
    assert "private" in refusal(policy(), url)
    assert policy(allow_private=True).check(url) == url


@pytest.mark.parametrize("url", ["https://[::ffff:169.254.169.254]/", "https://[::ffff:10.0.0.1]/"])
def test_ipv4_mapped_ipv6_literals_are_judged_as_their_ipv4_address(url: str) -> None:
    assert "not allowed" in refusal(policy(), url)


def test_ipv4_mapped_link_local_is_refused_even_with_allow_private() -> None:
    assert "link-local" in refusal(policy(allow_private=True), "https://[::ffff:169.254.169.254]/")


@pytest.mark.parametrize("url", ["https://224.0.0.1/", "https://[ff02::1]/", "https://0.0.0.0/",
                                 "https://[::]/", "https://240.0.0.1/"])
def test_multicast_unspecified_and_reserved_literals_are_always_refused(url: str) -> None:
    assert "reserved" in refusal(policy(allow_private=True), url)


def test_a_public_literal_is_accepted() -> None:
    assert policy().check("https://93.184.216.34/") == "https://93.184.216.34/"
