"""The Idempotency-Key header's syntax, its scope, and the request fingerprint (pure logic)."""

from __future__ import annotations

import json

import pytest

from cpe_devkit.client import DEVICE_PASSWORD, request_body
from provisioning.errors import InvalidRequest, SettingsError
from provisioning.idempotency_key import (
    BAD_KEY,
    BAD_STRING,
    SEVERAL_KEYS,
    fingerprint,
    parse_idempotency_key,
    scope_digest,
)
from provisioning.models import ProvisioningRequest, parse_provisioning_request
from provisioning.settings import ApiSettings

SECRET = b"a-fingerprint-secret-of-some-length"


def request(**changes: object) -> ProvisioningRequest:
    return parse_provisioning_request(request_body(**changes))  # type: ignore[arg-type]


def rejection(values: list[str]) -> str:
    with pytest.raises(InvalidRequest) as raised:
        parse_idempotency_key(values)
    return raised.value.message


# -- the header -----------------------------------------------------------------------------

def test_no_header_means_no_key() -> None:
    assert parse_idempotency_key([]) is None


def test_a_structured_field_string_is_unquoted() -> None:
    assert parse_idempotency_key(['"8e03978e-40d5-43e8-bc93-6894a57f9324"']) == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324")


def test_a_bare_key_is_taken_as_it_stands() -> None:
    assert parse_idempotency_key(["8e03978e-40d5"]) == "8e03978e-40d5"


def test_escaped_quote_and_backslash_are_unescaped() -> None:
    assert parse_idempotency_key([r'"a\"b\\c"']) == 'a"b\\c'


def test_a_key_of_255_characters_is_accepted_and_256_refused() -> None:
    assert parse_idempotency_key(["k" * 255]) == "k" * 255
    assert rejection(["k" * 256]) == BAD_KEY
    assert rejection(['"' + "k" * 256 + '"']) == BAD_KEY


@pytest.mark.parametrize("value", ['""', "", "tab\there", "caf\u00e9", '"caf\u00e9"'])
def test_an_empty_or_non_printable_key_is_refused(value: str) -> None:
    assert rejection([value]) == BAD_KEY
    assert BAD_KEY == "Idempotency-Key must be 1 to 255 printable ASCII characters"


@pytest.mark.parametrize("value", ['"open', r'"bad\escape"', '"a"b', '"a";p=1', '"ends\\'])
def test_a_malformed_structured_field_string_is_refused(value: str) -> None:
    assert rejection([value]) == BAD_STRING


def test_two_idempotency_key_fields_are_refused() -> None:
    assert rejection(["a", "b"]) == SEVERAL_KEYS


# -- scope --------------------------------------------------------------------------------

def test_scope_differs_by_caller_equipment_and_key_and_holds_none_of_them() -> None:
    scopes = {scope_digest("-", "CPE123", "k"), scope_digest("token", "CPE123", "k"),
              scope_digest("-", "CPE124", "k"), scope_digest("-", "CPE123", "k2")}
    assert len(scopes) == 4
    assert all(len(scope) == 64 and "CPE" not in scope for scope in scopes)


def test_scope_parts_cannot_run_into_each_other() -> None:
    assert scope_digest("a", "bCPE123", "k") != scope_digest("ab", "CPE123", "k")


# -- fingerprint --------------------------------------------------------------------------

def test_fingerprint_ignores_key_order_spacing_and_unknown_fields() -> None:
    shuffled = json.loads(json.dumps({"extra": 1, **dict(reversed(request_body().items()))}))
    assert fingerprint(parse_provisioning_request(shuffled), None) == fingerprint(request(), None)
    assert fingerprint(parse_provisioning_request(shuffled), SECRET) == fingerprint(request(), SECRET)


@pytest.mark.parametrize("secret", [None, SECRET])
def test_fingerprint_differs_when_a_field_the_platform_uses_differs(secret: bytes | None) -> None:
    base = fingerprint(request(), secret)
    assert fingerprint(request(vlan=535), secret) != base
    assert fingerprint(request(vlan=None), secret) != base
    assert fingerprint(request(interfaces=(1, 2)), secret) != base
    assert fingerprint(request(timeout_seconds=15), secret) != base


def test_without_a_secret_the_password_is_left_out_of_the_fingerprint() -> None:
    assert fingerprint(request(password="other"), None) == fingerprint(request(), None)


def test_with_a_secret_the_password_counts_and_the_fingerprint_is_keyed() -> None:
    assert fingerprint(request(password="other"), SECRET) != fingerprint(request(), SECRET)
    assert fingerprint(request(), SECRET) != fingerprint(request(), b"another-secret-0123456789")
    assert fingerprint(request(), SECRET).startswith("hmac-sha256:")


def test_no_fingerprint_contains_the_password() -> None:
    for secret in (None, SECRET):
        assert DEVICE_PASSWORD not in fingerprint(request(), secret)


# -- settings -----------------------------------------------------------------------------

def test_keys_live_a_day_and_the_fingerprint_is_unkeyed_by_default() -> None:
    settings = ApiSettings.from_env({}).idempotency
    assert (settings.ttl_seconds, settings.fingerprint_secret) == (86_400, None)


def test_the_fingerprint_secret_is_read_and_never_shown() -> None:
    settings = ApiSettings.from_env({"IDEMPOTENCY_FINGERPRINT_SECRET": SECRET.decode()})
    assert settings.idempotency.fingerprint_secret == SECRET
    assert SECRET.decode() not in repr(settings)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("IDEMPOTENCY_TTL_SECONDS", "0", "IDEMPOTENCY_TTL_SECONDS must be at least 1, got 0"),
    ("IDEMPOTENCY_FINGERPRINT_SECRET", "short",
     "IDEMPOTENCY_FINGERPRINT_SECRET must be at least 16 characters long"),
])
def test_bad_idempotency_settings_stop_the_start(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{message}$"):
        ApiSettings.from_env({variable: value})
