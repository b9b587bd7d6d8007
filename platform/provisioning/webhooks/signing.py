"""Signing after the Standard Webhooks specification (standardwebhooks.com, "Signature scheme").

Every attempt carries three headers::

    webhook-id: msg_<task id>                    stable per task: receivers deduplicate on it
    webhook-timestamp: <integer epoch seconds>   the attempt's own time: receivers refuse stale ones
    webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)>

``WEBHOOK_SECRET`` may hold several ``whsec_<base64>`` secrets so a key can be rotated: the
first one signs, and a receiver accepts any of the secrets it knows (``verify``). The HMAC is
written out here rather than taken from a library: it is three lines, and the test suite checks
it against the reference implementation (``standardwebhooks``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0  # Standard Webhooks' suggested tolerance: five minutes

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class InvalidSignature(ValueError):
    """A webhook whose headers are missing, stale, or whose signature matches no secret."""


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}." + body`` under ``key``."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(key: bytes, webhook_id: str, body: bytes, *,
                      timestamp: int | None = None) -> dict[str, str]:
    """The three headers of one attempt, signed with ``key`` at ``timestamp`` (now unless told)."""
    at = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(at),
        SIGNATURE_HEADER: signature(key, webhook_id, at, body),
    }


def verify(keys: Iterable[bytes], headers: Mapping[str, str], body: bytes, *,
           tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Return when ``headers`` sign ``body`` with one of ``keys`` within the tolerance; raise
    ``InvalidSignature`` otherwise. ``headers`` may use any case; the signature header may list
    several space-separated signatures (a sender that rotates keys signs with each)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get(ID_HEADER)
    raw_timestamp = lowered.get(TIMESTAMP_HEADER)
    sent = lowered.get(SIGNATURE_HEADER)
    if not (webhook_id and raw_timestamp and sent):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    offered = sent.split()
    for key in keys:
        expected = signature(key, webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in offered):
            return
    raise InvalidSignature("no signature matches")
