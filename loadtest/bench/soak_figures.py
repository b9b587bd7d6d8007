"""The figures of the ``soak`` phase (pure): what every platform process's RSS and open files,
Redis's memory and the queues' depths did over a long steady run, and whether they stayed flat.

A series is a list of (seconds since the load started, value) samples. Its figures are the
first sample (start), the one nearest the middle of the run, the last (end), and the slope of
the least-squares line through the samples taken after the warm-up, per hour, with the
slope's standard error. The warm-up (``warmup_seconds``) is the first 10 % of the run, or
longer when the tasks' records need longer to start expiring (``TASK_TTL_SECONDS`` plus the
stub's delay): only then is Redis in its steady state.

A series is flat when its slope is within its bound (``FLAT_PER_HOUR``) or within twice its
standard error (the samples' own noise, e.g. connections that come and go, is not a trend);
otherwise it grows or falls. A series that grows is a leak to look for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .figures import MIB, ms, percentile
from .notice_figures import FINAL_STATUS_NAMES

Series = Sequence[tuple[float, float]]

WARMUP_SHARE = 0.10
MIN_SLOPE_SAMPLES = 3
SECONDS_PER_HOUR = 3600.0
NOISE_STANDARD_ERRORS = 2.0
# What a slope per hour may be and still count as flat, by the kind of series.
RSS_MIB = "rss_mib"
OPEN_FILES = "open_files"
REDIS_MIB = "redis_used_memory_mib"
REDIS_KEYS = "redis_keys"
QUEUE_MESSAGES = "queue_messages"
FLAT_PER_HOUR = {RSS_MIB: 5.0, OPEN_FILES: 10.0, REDIS_MIB: 5.0, REDIS_KEYS: 1000.0, QUEUE_MESSAGES: 100.0}


def warmup_seconds(duration: float, *, steady_after: float = 0.0) -> float:
    """Seconds at the start of a run left out of the slopes: ``WARMUP_SHARE`` of ``duration``,
    or ``steady_after`` when that is longer, but never more than half the run (the slope
    needs samples)."""
    return min(max(WARMUP_SHARE * duration, steady_after), duration / 2)


def least_squares(points: Series) -> tuple[float, float] | None:
    """The slope of the least-squares line through the points (value per second) and its
    standard error; None for fewer than ``MIN_SLOPE_SAMPLES`` points or no spread in time."""
    n = len(points)
    if n < MIN_SLOPE_SAMPLES:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    intercept = mean_v - slope * mean_t
    residuals = sum((v - intercept - slope * t) ** 2 for t, v in points)
    return slope, math.sqrt(residuals / (n - 2) / spread)


def middle(points: Series) -> float:
    """The value of the sample nearest the middle of the series' time span."""
    halfway = (points[0][0] + points[-1][0]) / 2
    return min(points, key=lambda point: abs(point[0] - halfway))[1]


def verdict(slope: float | None, error: float | None, bound: float) -> str:
    """``flat``, ``grows`` or ``falls`` for a slope per hour; ``?`` without one."""
    if slope is None or error is None:
        return "?"
    if abs(slope) <= max(bound, NOISE_STANDARD_ERRORS * error):
        return "flat"
    return "grows" if slope > 0 else "falls"


def series_figures(points: Series, warmup: float, kind: str) -> dict[str, Any]:
    """Start, middle and end of a series, its slope per hour after ``warmup`` seconds (with
    its standard error and the samples it was fitted to) and its verdict."""
    if not points:
        return {"start": None, "middle": None, "end": None, "slope_per_hour": None,
                "slope_error_per_hour": None, "fitted_samples": 0, "verdict": "?"}
    steady = [point for point in points if point[0] >= warmup]
    fit = least_squares(steady)
    slope, error = (None, None) if fit is None else (fit[0] * SECONDS_PER_HOUR, fit[1] * SECONDS_PER_HOUR)
    return {
        "start": round(points[0][1], 1), "middle": round(middle(points), 1), "end": round(points[-1][1], 1),
        "slope_per_hour": None if slope is None else round(slope, 2),
        "slope_error_per_hour": None if error is None else round(error, 2),
        "fitted_samples": len(steady),
        "verdict": verdict(slope, error, FLAT_PER_HOUR[kind]),
    }


def in_mib(points: Series) -> list[tuple[float, float]]:
    return [(t, value / MIB) for t, value in points]


def process_rows(rss: Mapping[str, Series], files: Mapping[str, Series], warmup: float
                 ) -> dict[str, dict[str, Any]]:
    """Per process (its name): the figures of its RSS (bytes in, MiB out) and open files."""
    return {name: {"rss_mib": series_figures(in_mib(rss[name]), warmup, RSS_MIB),
                   "open_files": series_figures(files.get(name, []), warmup, OPEN_FILES)}
            for name in rss}


def queue_rows(depths: Mapping[str, Series], warmup: float) -> dict[str, dict[str, Any]]:
    """Per queue: the figures of its ready messages."""
    return {queue: series_figures(points, warmup, QUEUE_MESSAGES) for queue, points in depths.items()}


def soak_outcome(created: Sequence[tuple[str, float]], notices: Mapping[str, tuple[float, str]],
                 seconds: float) -> dict[str, Any]:
    """How the tasks ended as their polling clients learnt it: ``created`` is (task id, when
    its create was answered), ``notices`` task id -> (when the final status arrived, the
    status). A task whose client never learnt a final status is lost. The time to completion
    is the notice's arrival minus the create's answer (the stub's delay included)."""
    tally = {"completed": 0, "failed": 0, "cancelled": 0, "lost": 0}
    durations: list[float] = []
    for task_id, created_at in created:
        notice = notices.get(task_id)
        if notice is None:
            tally["lost"] += 1
            continue
        status = FINAL_STATUS_NAMES.get(notice[1], "failed")
        tally[status] = tally.get(status, 0) + 1
        durations.append(notice[0] - created_at)
    finished = len(created) - tally["lost"]
    return {
        "created": len(created), **tally,
        "created_per_second": round(len(created) / seconds, 1) if seconds > 0 else None,
        "finished_per_second": round(finished / seconds, 1) if seconds > 0 else None,
        "to_final_p50_ms": ms(percentile(durations, 0.50)) if durations else None,
        "to_final_p99_ms": ms(percentile(durations, 0.99)) if durations else None,
        "to_final_max_ms": ms(max(durations)) if durations else None,
    }


def leaks(row: Mapping[str, Any]) -> list[str]:
    """Every series of a soak row that grows: '<process> RSS', '<process> open files',
    'Redis used memory', 'Redis keys', '<queue> depth'."""
    found = [f"{name} {label}" for name, process in row["processes"].items()
             for key, label in (("rss_mib", "RSS"), ("open_files", "open files"))
             if process[key]["verdict"] == "grows"]
    redis_series = (("redis_used_memory_mib", "Redis used memory"), ("redis_keys", "Redis keys"))
    found += [label for key, label in redis_series if row[key]["verdict"] == "grows"]
    found += [f"{queue} depth" for queue, figures in row["queues"].items() if figures["verdict"] == "grows"]
    return found
