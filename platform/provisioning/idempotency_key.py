"""The ``Idempotency-Key`` request header, the scope a key belongs to, and request fingerprints.

After the IETF httpapi draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header): the field is an Item Structured Header (RFC 8941)
whose value is a String, ``Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"``. Clients
that send the bare value (``Idempotency-Key: 8e03…``, as Stripe's do) are accepted too. Either
way the key is 1 to 255 printable ASCII characters (0x20..0x7E); a malformed key, or more than
one ``Idempotency-Key`` field, is a 400 that says what is wrong.

A key is scoped to its caller (the bearer token when ``API_TOKENS`` is on) and the equipment
id: the same key from another caller or for another device is another key. Only a SHA-256 of
the scope is ever stored, never the token itself.

The fingerprint says whether a repeated request is "the same request": a hash of the canonical
JSON of what the platform keeps of the body (``ProvisioningRequest.to_wire``: sorted keys, no
whitespace), not of the bytes, so key order, spacing and ignored fields do not matter. The body
carries the device credentials, and an unkeyed hash of a low-entropy password can be reversed
by guessing, so: with ``IDEMPOTENCY_FINGERPRINT_SECRET`` the fingerprint is an HMAC-SHA256 keyed
by it over the whole request; without it the credentials (``parameters.username`` and
``parameters.password``) are left out of the fingerprint, and two bodies that differ only in
them count as the same body. Nothing derived from a credential is ever stored unkeyed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from .errors import InvalidRequest
from .models import ProvisioningRequest

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
NO_CALLER = "-"  # the scope's caller when the API is open (no API_TOKENS)
CREDENTIALS = ("username", "password")

BAD_KEY = f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
BAD_STRING = f"{HEADER} is not a valid structured-field string"
SEVERAL_KEYS = f"{HEADER} must be sent at most once"


def _printable(text: str) -> bool:
    return all(" " <= character <= "~" for character in text)


def parse_idempotency_key(values: Sequence[str]) -> str | None:
    """The key from every ``Idempotency-Key`` field of a request; None when there is none.

    A value that starts with a double quote is an sf-string (RFC 8941, 4.2.5: ``\\"`` and
    ``\\\\`` are the only escapes, nothing may follow the closing quote); any other value is
    the key as it stands. Raises ``InvalidRequest`` saying what is wrong.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(SEVERAL_KEYS)
    raw = values[0].strip(" \t")
    key = _sf_string(raw) if raw.startswith('"') else raw
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not _printable(key):
        raise InvalidRequest(BAD_KEY)
    return key


def _sf_string(raw: str) -> str:
    characters: list[str] = []
    position = 1
    while position < len(raw):
        character = raw[position]
        position += 1
        if character == "\\":
            if position == len(raw) or raw[position] not in '"\\':
                raise InvalidRequest(BAD_STRING)
            characters.append(raw[position])
            position += 1
        elif character == '"':
            if position != len(raw):
                raise InvalidRequest(BAD_STRING)
            return "".join(characters)
        elif not _printable(character):
            raise InvalidRequest(BAD_KEY)
        else:
            characters.append(character)
    raise InvalidRequest(BAD_STRING)  # no closing quote


def scope_digest(caller: str, equipment_id: str, key: str) -> str:
    """SHA-256 (hex) of caller, equipment id and key: the stored name of one key's record."""
    scope = json.dumps([caller, equipment_id, key], separators=(",", ":"))
    return hashlib.sha256(scope.encode()).hexdigest()


def canonical_request(request: ProvisioningRequest, *, with_credentials: bool,
                      callback_url: str | None = None) -> bytes:
    """The request as canonical JSON (sorted keys, no whitespace), credentials only if told;
    a create's ``callbackUrl`` is part of it (a request without one hashes as before)."""
    wire = request.to_wire()
    if callback_url is not None:
        wire["callbackUrl"] = callback_url
    if not with_credentials:
        wire["parameters"] = {name: value for name, value in wire["parameters"].items()
                              if name not in CREDENTIALS}
    return json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def fingerprint(request: ProvisioningRequest, secret: bytes | None, *,
                callback_url: str | None = None) -> str:
    """HMAC-SHA256 of the whole request keyed by ``secret``; without a secret, SHA-256 of the
    request without its credentials."""
    if secret is not None:
        return "hmac-sha256:" + hmac.new(
            secret, canonical_request(request, with_credentials=True, callback_url=callback_url),
            hashlib.sha256,
        ).hexdigest()
    return "sha256:" + hashlib.sha256(
        canonical_request(request, with_credentials=False, callback_url=callback_url)).hexdigest()
