"""The figures of a run, from what the clients, the sampler and the task store gave: pure
functions of their inputs, rounded the way the report prints them.

Latencies are of answered requests only; a rate counts the 200s. An empty input gives NaN for
a percentile and None for a figure that would otherwise be made up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .jobs import ClientResult
from .outcomes import Outcomes
from .sampling import OTHERS, SYSTEM, CpuSplit

MEMORY_GROUPS = ("worker", "stub", "api")
MIB = 2**20


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of them at or
    below it; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to a tenth."""
    return round(seconds * 1000, 1)


def latency_figures(results: Sequence[ClientResult]) -> dict[str, Any]:
    """Requests, answers by status, rate and latency over every client of one run."""
    latencies = [value for result in results for value in result.latencies]
    statuses: Counter[str] = Counter()
    for result in results:
        statuses.update(result.statuses)
    first = min((result.first for result in results), default=0.0)
    last = max((result.last for result in results), default=0.0)
    elapsed = max(last - first, 1e-9)
    ok = statuses.get("200", 0)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": {status: count for status, count in statuses.items() if status != "200"},
        "seconds": round(elapsed, 2),
        "per_second": round(ok / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies)) if latencies else None,
        "client_cpu_seconds": round(sum(result.cpu_seconds for result in results), 1),
    }


def cpu_ms_per_request(cpu_seconds: Mapping[str, float], group: str, ok: int) -> float:
    """Milliseconds of ``group``'s CPU per answered request."""
    return round(1000 * cpu_seconds.get(group, 0.0) / max(ok, 1), 2)


def overhead_figures(outcomes: Outcomes) -> dict[str, Any]:
    """How the tasks ended, and how long past the stub's delay the finished ones took."""
    values = outcomes.overheads
    return {
        "submitted": outcomes.submitted,
        "completed": outcomes.completed,
        "failed": outcomes.failed,
        "lost": outcomes.lost,
        "lost_statuses": dict(outcomes.lost_statuses),
        "overhead_p50_ms": ms(percentile(values, 0.50)) if values else None,
        "overhead_p99_ms": ms(percentile(values, 0.99)) if values else None,
        "overhead_max_ms": ms(max(values)) if values else None,
        "peak_running": outcomes.peak_running,
    }


def memory_figures(rss: Mapping[str, tuple[int, int]], in_flight: int) -> dict[str, Any]:
    """Baseline and peak RSS of the platform's groups, and what each task in flight added."""
    memory: dict[str, Any] = {}
    for group in MEMORY_GROUPS:
        if group in rss:
            first, peak = rss[group]
            memory[group] = {
                "baseline_mib": round(first / MIB, 1),
                "peak_mib": round(peak / MIB, 1),
                "kib_per_in_flight_task": round((peak - first) / 1024 / in_flight, 2) if in_flight else None,
            }
    return memory


def resource_figures(cpu: CpuSplit, rss: Mapping[str, tuple[int, int]], processes: Mapping[str, Any], *,
                     window_seconds: float, tasks: int, in_flight: int) -> dict[str, Any]:
    """CPU in all and per 1,000 tasks by group, CPU per process, memory per task in flight."""
    per_thousand = 1000 / tasks if tasks else float("nan")
    return {
        "window_seconds": round(window_seconds, 1),
        "cpu_seconds": {group: round(value, 1) for group, value in sorted(cpu.by_group.items())},
        "cpu_seconds_per_1000_tasks": {group: round(value * per_thousand, 2)
                                       for group, value in sorted(cpu.by_group.items())
                                       if group not in (SYSTEM, OTHERS)},
        "cpu_seconds_per_process": {role: round(value, 1) for role, value in sorted(cpu.by_role.items())
                                    if value >= 0.05},
        "memory": memory_figures(rss, in_flight),
        "processes": dict(processes),
    }


def rate_passed(creates: Mapping[str, Any], outcome: Mapping[str, Any]) -> bool:
    """A sustained rate passes when nothing is lost, every create is answered 200 with p99
    under 100 ms, and the completion overhead p99 is under a second."""
    overhead_p99 = outcome["overhead_p99_ms"]
    return bool(outcome["lost"] == 0 and creates["errors"] == {} and creates["p99_ms"] < 100
                and overhead_p99 is not None and overhead_p99 < 1000)
