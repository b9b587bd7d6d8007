"""The v2 history's cursor and limit: what the API gives back it takes, anything else is a 400."""

from __future__ import annotations

import base64
import uuid

import pytest

from provisioning.api.routes_v2 import decode_cursor, encode_cursor, parse_limit
from provisioning.errors import InvalidRequest
from provisioning.task_view import timestamp


@pytest.mark.parametrize("score", [0.0, 1764581299.123456, 1e-7, 1764581299.0])
def test_a_cursor_gives_back_exactly_the_position_it_was_made_from(score: float) -> None:
    task_id = str(uuid.uuid4())
    assert decode_cursor(encode_cursor((score, task_id))) == (score, task_id)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "!!!", b64("nan:" + str(uuid.uuid4())), b64("inf:" + str(uuid.uuid4())),
    b64("1.5:not-a-uuid"), b64("1.5"), b64(f"1.5:{uuid.uuid4()}:x"),
    b64(f"1.5:{str(uuid.uuid4()).upper()}"), "A" * 129, b64("\u00e9:x"),
])
def test_anything_else_is_refused_as_not_a_cursor(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor is not a cursor this API returned"):
        decode_cursor(cursor)


@pytest.mark.parametrize(("raw", "limit"), [(None, 20), ("1", 1), ("100", 100), ("020", 20)])
def test_a_limit_from_1_to_100_is_taken(raw: str | None, limit: int) -> None:
    assert parse_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "101", "-1", "", " 5", "5.0", "1e2", "99999", "٣"])
def test_a_limit_outside_1_to_100_is_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="limit must be an integer from 1 to 100"):
        parse_limit(raw)


def test_timestamps_are_iso_8601_utc_with_milliseconds() -> None:
    assert timestamp(0.5) == "1970-01-01T00:00:00.500Z"
    assert timestamp(None) is None
