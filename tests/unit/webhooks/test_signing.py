"""Standard Webhooks signatures: the known vector, the reference library, rotation, tolerance."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks.webhooks import Webhook

from cpe_devkit.webhook_receiver import new_secret
from provisioning.webhooks.signing import InvalidSignature, signature, signature_headers, verify

# The Standard Webhooks specification's own example (its reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def test_the_signature_matches_the_specifications_example() -> None:
    assert signature(key_of(SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_the_reference_library_accepts_our_headers() -> None:
    secret = new_secret()
    body = b'{"type":"task.completed","data":{"code":200}}'
    headers = signature_headers(key_of(secret), "msg_abc", body)
    assert Webhook(secret).verify(body, headers) == {"type": "task.completed", "data": {"code": 200}}


def test_the_timestamp_header_is_integer_seconds_of_the_attempt() -> None:
    headers = signature_headers(b"k" * 24, "msg_abc", b"{}", timestamp=1700000000)
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-id"] == "msg_abc"


def test_verify_accepts_any_of_several_secrets_so_keys_can_rotate() -> None:
    old, new = key_of(new_secret()), key_of(new_secret())
    headers = signature_headers(old, "msg_abc", b"{}")
    verify([new, old], headers, b"{}")
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify([new], headers, b"{}")


def test_verify_refuses_a_changed_body() -> None:
    key = key_of(new_secret())
    headers = signature_headers(key, "msg_abc", b'{"a":1}')
    with pytest.raises(InvalidSignature):
        verify([key], headers, b'{"a":2}')


def test_verify_refuses_a_timestamp_outside_the_tolerance() -> None:
    key = key_of(new_secret())
    headers = signature_headers(key, "msg_abc", b"{}", timestamp=1_000_000)
    verify([key], headers, b"{}", now=1_000_299)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify([key], headers, b"{}", now=1_000_301)


def test_verify_refuses_missing_headers() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify([b"k" * 24], {"webhook-id": "msg_abc"}, b"{}")
