"""The one retry policy of the platform: exponential backoff with jitter.

Every loop that waits before trying again uses it: the worker between calls to Service A,
a consumer holding a message while Redis or the result publish is away, the broker's
reconnection supervisor, and (through an adapter in ``store``) redis-py's per-command retry.

The ceiling starts at ``initial_seconds`` and doubles after each failure up to
``max_seconds``; each pause is drawn from the ceiling's upper half, so callers that failed
together do not all retry together, yet none retries much sooner than the policy says.
Imports nothing of the platform, so every layer may import it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_seconds: float
    max_seconds: float

    def delay(self, failed_attempts: int, *, rng: random.Random | None = None) -> float:
        """The pause after ``failed_attempts`` consecutive failures (1 for the first)."""
        ceiling = min(self.initial_seconds * 2.0 ** max(failed_attempts - 1, 0), self.max_seconds)
        jitter: float = (rng or random).uniform(0, ceiling / 2)
        return ceiling / 2 + jitter

    def delays(self, *, rng: random.Random | None = None) -> Iterator[float]:
        """The pauses of one run of failures, without end: take ``next()`` after each failure,
        and start a new iterator after a success to begin again from ``initial_seconds``."""
        failed_attempts = 0
        while True:
            failed_attempts += 1
            yield self.delay(failed_attempts, rng=rng)
