"""The CPU of a sustained rate once it is steady: from ``delay + STEADY_MARGIN_SECONDS`` after
the clients start to the end of the submission.

A rate run's whole window also holds its warm-up: in the first ``delay`` seconds every call to
the stub opens a connection of its own (a TLS handshake on both sides), until the first calls
end and their connections are reused. A run of R tasks/s for T seconds with delay D makes R x D
handshakes for R x T tasks (half of them in a 120-s run with D = 60), so the whole-window CPU
per task depends on T. In the steady window tasks end at the rate they are created, on
connections already open: its CPU divided by R x its length is the cost of a task in steady
state. It holds only for a run that kept up (nothing lost, overhead within bounds): a backlog
growing inside the window puts work off to after it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .options import BenchOptions
from .sampling import OTHERS, SYSTEM, ProcessSampler, Snapshot, cpu_between

STEADY_MARGIN_SECONDS = 10.0  # after the first calls end: their connections are back in the pools
MIN_STEADY_SECONDS = 20.0  # a shorter window says too little to be worth a figure


@dataclass
class SteadyWindow:
    """Two snapshots of the platform's CPU, taken by timers while the clients run."""

    sampler: ProcessSampler
    opens_after: float
    closes_after: float
    snapshots: list[Snapshot] = field(default_factory=list)
    timers: list[threading.Timer] = field(default_factory=list)

    @classmethod
    def of(cls, options: BenchOptions, sampler: ProcessSampler) -> SteadyWindow | None:
        """Started now (the clients start next); None when the run is too short to have one."""
        opens, closes = options.delay + STEADY_MARGIN_SECONDS, options.rate_seconds
        if closes - opens < MIN_STEADY_SECONDS:
            return None
        window = cls(sampler, opens, closes)
        for after in (opens, closes):
            timer = threading.Timer(after, window._take)
            timer.daemon = True
            timer.start()
            window.timers.append(timer)
        return window

    def _take(self) -> None:
        self.snapshots.append(self.sampler.snapshot())

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()

    def figures(self, rate: float) -> dict[str, Any] | None:
        """CPU ms per task by group in the window, its bounds and length; None if not taken."""
        if len(self.snapshots) < 2:
            return None
        start, end = self.snapshots[0], self.snapshots[1]
        seconds = end.at - start.at
        cpu = cpu_between(start, end)
        per_task = 1000 / (rate * seconds)
        return {
            "from_second": self.opens_after,
            "to_second": self.closes_after,
            "seconds": round(seconds, 1),
            "cpu_ms_per_task": {group: round(value * per_task, 3)
                                for group, value in sorted(cpu.by_group.items())
                                if group not in (SYSTEM, OTHERS)},
            "others_cpu_seconds": round(cpu.by_group.get(OTHERS, 0.0), 1),
        }
