"""Retry decisions: the schedule, Retry-After lengthening but capped, jitter, delay queues."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from provisioning.webhooks.retries import JITTER, RetrySchedule, retry_after_seconds

SCHEDULE = RetrySchedule((5.0, 30.0, 120.0))


@pytest.mark.parametrize(("attempt", "pause"), [(1, 5.0), (2, 30.0), (3, 120.0), (4, None)])
def test_each_failed_attempt_waits_its_pause_and_past_the_schedule_none_is_left(
        attempt: int, pause: float | None) -> None:
    assert SCHEDULE.pause(attempt) == pause


def test_retry_after_lengthens_a_pause_but_never_shortens_it() -> None:
    assert SCHEDULE.pause(1, retry_after=60.0) == 60.0
    assert SCHEDULE.pause(2, retry_after=1.0) == 30.0


def test_retry_after_is_capped_at_the_longest_pause() -> None:
    assert SCHEDULE.pause(1, retry_after=86_400.0) == 120.0


def test_a_retry_waits_in_the_shortest_delay_queue_at_least_its_pause_with_jitter() -> None:
    retry = SCHEDULE.retry(1, retry_after=60.0, rng=random.Random(7))
    assert retry is not None
    assert retry.delay == 120.0
    assert (1 - JITTER) * 60_000 <= retry.expiration_ms <= 60_000


def test_jitter_only_shortens_and_by_at_most_a_fifth() -> None:
    rng = random.Random(1)
    expirations = {SCHEDULE.retry(2, rng=rng).expiration_ms for _ in range(200)}  # type: ignore[union-attr]
    assert min(expirations) >= 24_000 and max(expirations) <= 30_000
    assert len(expirations) > 100


def test_no_retry_once_the_schedule_is_used_up() -> None:
    assert SCHEDULE.retry(4) is None


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), (None, None), ("soon", None), ("-5", None), ("1.5", None),
])
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=0.0) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    header = format_datetime(datetime(2026, 1, 1, 12, 1, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(header, now=now) == 90.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
