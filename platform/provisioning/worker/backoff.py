"""Exponential backoff with jitter for retrying Service A."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_seconds: float
    max_seconds: float

    def delay(self, failed_attempts: int, *, rng: random.Random | None = None) -> float:
        """Pause after ``failed_attempts`` failures: the ceiling doubles each time up to
        ``max_seconds``; the pause is drawn from its upper half so that tasks that failed
        together do not all retry together."""
        ceiling = min(self.initial_seconds * 2.0 ** max(failed_attempts - 1, 0), self.max_seconds)
        jitter: float = (rng or random).uniform(0, ceiling / 2)
        return ceiling / 2 + jitter
