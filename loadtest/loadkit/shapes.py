"""Load shapes for the provisioning scenarios: constant, ramp, steady arrival rate, burst.

One ``LoadTestShape`` class, ``ScenarioShape``, whose mode comes from ``--shape`` (or
``LOAD_SHAPE``), so that the same locustfile serves every shape and the web UI's class picker
can still choose "Default" (no shape at all). It reads Locust's parsed options from its
runner's environment at every tick, never a copy kept elsewhere.

Counts are in *tasks in flight*, not users: each ``ProvisioningUser`` holds exactly one task at
a time, so N tasks need N provisioning users, and with the other weighted scenarios beside them
the shape asks for N / (provisioning weight / total weight) users in all. The plan itself is a
pure function of the run time (``plan``), so it reads and tests without Locust running.

    constant  -u users at -r per second, until --run-time (Locust's own options; without
              --run-time it runs until stopped)
    ramp      0 -> --ramp-tasks over --ramp-seconds, held --hold-seconds, then stop
    rate      --rate tasks/s for --rate-seconds: --rate x pacing users started at --rate users/s,
              each starting one task every pacing seconds (an arrival rate, not a concurrency)
    burst     -u tasks in flight as a baseline; at --burst-at, --burst-tasks more at once for
              --burst-hold seconds; back to the baseline for --burst-cooldown, then stop
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape

SHAPES = ("constant", "ramp", "rate", "burst")


def task_pacing(options: Any) -> float:
    """Seconds between the starts of one provisioning user's tasks: ``--pacing``, or, for the
    rate shape, long enough that a task ends before the next starts (else back to back).
    The rate shape and the provisioning users both pace by it."""
    if options.pacing >= 0:
        return float(options.pacing)
    return 1.5 * max(options.expected_seconds, 0.0) + 10 if options.shape == "rate" else 0.0


@dataclass(frozen=True)
class ShapeOptions:
    """What a shape needs from the command line, in tasks and seconds."""

    shape: str = "constant"
    users: int = 1
    spawn_rate: float = 1.0
    ramp_tasks: int = 100
    ramp_seconds: float = 60.0
    hold_seconds: float = 120.0
    rate: float = 10.0
    rate_seconds: float = 300.0
    pacing: float = 90.0
    burst_tasks: int = 500
    burst_at: float = 30.0
    burst_hold: float = 60.0
    burst_cooldown: float = 60.0
    run_time: float | None = None

    @classmethod
    def from_parsed(cls, options: Any) -> ShapeOptions:
        return cls(
            shape=options.shape,
            users=int(options.num_users or 1),
            spawn_rate=float(options.spawn_rate or 1.0),
            ramp_tasks=options.ramp_tasks,
            ramp_seconds=options.ramp_seconds,
            hold_seconds=options.hold_seconds,
            rate=options.rate,
            rate_seconds=options.rate_seconds,
            pacing=task_pacing(options),
            burst_tasks=options.burst_tasks,
            burst_at=options.burst_at,
            burst_hold=options.burst_hold,
            burst_cooldown=options.burst_cooldown,
            run_time=float(options.run_time) if options.run_time else None,
        )


def plan(options: ShapeOptions, run_time: float) -> tuple[int, float] | None:
    """``(tasks in flight wanted, spawn rate in tasks/s)`` at ``run_time``; None to stop.

    ``constant`` counts users, as Locust's own ``-u`` does. ``--run-time`` ends every shape
    early (Locust does not apply it to a shape class in headless mode).
    """
    if options.run_time is not None and run_time >= options.run_time:
        return None
    if options.shape == "constant":
        return options.users, options.spawn_rate
    if options.shape == "ramp":
        if run_time < options.ramp_seconds:
            share = (run_time + 1.0) / options.ramp_seconds  # reach the step a tick early
            rate = options.ramp_tasks / options.ramp_seconds
            return min(options.ramp_tasks, max(1, math.ceil(options.ramp_tasks * share))), rate
        if run_time < options.ramp_seconds + options.hold_seconds:
            return options.ramp_tasks, options.ramp_tasks / max(options.ramp_seconds, 1.0)
        return None
    if options.shape == "rate":
        if run_time < options.rate_seconds:
            return max(1, math.ceil(options.rate * options.pacing)), options.rate
        return None
    if options.shape == "burst":
        end_of_burst = options.burst_at + options.burst_hold
        if run_time < options.burst_at:
            return options.users, options.spawn_rate
        if run_time < end_of_burst:
            return options.users + options.burst_tasks, float(max(options.burst_tasks, 1))
        if run_time < end_of_burst + options.burst_cooldown:
            return options.users, float(max(options.burst_tasks, 1))
        return None
    raise ValueError(f"unknown shape {options.shape!r}; one of {', '.join(SHAPES)}")


def users_for(tasks: int, provisioning_weight: float, total_weight: float) -> int:
    """Users in all so that the weighted dispatch gives ``tasks`` provisioning users."""
    if provisioning_weight <= 0 or total_weight <= 0:
        return tasks
    return max(1, math.ceil(tasks * total_weight / provisioning_weight))


class ScenarioShape(LoadTestShape):
    """The shape named by ``--shape``; ``constant`` is plain ``-u``/``-r``/``--run-time``."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment if self.runner else None
        if environment is None or environment.parsed_options is None:
            return None
        parsed = environment.parsed_options
        options = ShapeOptions.from_parsed(parsed)
        wanted = plan(options, self.get_run_time())  # type: ignore[no-untyped-call]  # Locust's own
        if wanted is None or options.shape == "constant":
            return wanted
        tasks, spawn_rate = wanted
        weights = {cls.__name__: float(getattr(cls, "weight", 1)) for cls in environment.user_classes}
        provisioning = weights.get("ProvisioningUser", 0.0)
        total = sum(weights.values())
        scale = total / provisioning if provisioning else 1.0
        return users_for(tasks, provisioning, total), spawn_rate * scale
