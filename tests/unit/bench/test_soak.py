"""The soak phase's figures: a series' start, middle and end, its least-squares slope per hour
after the warm-up and whether it is flat; how the tasks ended; the report's rows and the
RESULTS.md block of its own."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench.figures import MIB
from bench.report import BEGIN, END, SOAK_BEGIN, SOAK_END, render, results_blocks, with_results_block
from bench.soak import queue_labels
from bench.soak_figures import (
    FLAT_PER_HOUR,
    OPEN_FILES,
    QUEUE_MESSAGES,
    REDIS_KEYS,
    REDIS_MIB,
    RSS_MIB,
    leaks,
    least_squares,
    process_rows,
    queue_rows,
    series_figures,
    soak_outcome,
    verdict,
    warmup_seconds,
)

HOUR = 3600.0


def line(slope_per_hour: float, *, start: float = 100.0, every: float = 30.0, seconds: float = 1800.0
         ) -> list[tuple[float, float]]:
    """Samples of a straight line from ``start``, one every ``every`` seconds."""
    return [(t, start + slope_per_hour * t / HOUR) for t in range(0, int(seconds) + 1, int(every))]


# Fitting a line.

def test_the_slope_of_points_on_a_line_is_the_lines_with_no_error() -> None:
    fit = least_squares([(0.0, 1.0), (10.0, 3.0), (20.0, 5.0), (30.0, 7.0)])
    assert fit is not None
    slope, error = fit
    assert slope == pytest.approx(0.2)
    assert error == pytest.approx(0.0, abs=1e-12)


def test_the_slope_of_scattered_points_is_the_least_squares_one_with_its_standard_error() -> None:
    # By hand: mean t 1.5, mean v 2.5, sum (t - 1.5)(v - 2.5) = 6, sum (t - 1.5)^2 = 5.
    slope, error = least_squares([(0.0, 1.0), (1.0, 2.0), (2.0, 2.0), (3.0, 5.0)]) or (None, None)
    assert slope == pytest.approx(1.2)
    # Intercept 0.7, residuals 0.3, 0.1, -1.1, 0.7: sqrt(1.8 / (4 - 2) / 5).
    assert error == pytest.approx((1.8 / 2 / 5) ** 0.5)


@pytest.mark.parametrize("points", [[], [(0.0, 1.0), (1.0, 2.0)], [(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)]])
def test_too_few_points_or_no_spread_in_time_give_no_slope(points: list[tuple[float, float]]) -> None:
    assert least_squares(points) is None


# The warm-up.

def test_the_warm_up_is_a_tenth_of_the_run() -> None:
    assert warmup_seconds(1800.0) == 180.0


def test_the_warm_up_lasts_until_redis_is_steady_when_that_is_longer() -> None:
    assert warmup_seconds(1800.0, steady_after=307.0) == 307.0


def test_the_warm_up_never_takes_more_than_half_the_run() -> None:
    assert warmup_seconds(60.0, steady_after=300.0) == 30.0


# A series' figures and verdict.

def test_a_series_reports_its_first_middle_and_last_samples() -> None:
    points = [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, 50.0)]
    figures = series_figures(points, 0.0, RSS_MIB)
    assert (figures["start"], figures["middle"], figures["end"]) == (10.0, 30.0, 50.0)


def test_the_slope_is_per_hour() -> None:
    figures = series_figures(line(12.0), 0.0, RSS_MIB)
    assert figures["slope_per_hour"] == pytest.approx(12.0)
    assert figures["fitted_samples"] == 61


def test_the_warm_up_samples_are_left_out_of_the_slope_but_not_of_the_start() -> None:
    # Memory that climbs by 40 MiB in the first three minutes, then stays where it is.
    points = [(t, 60.0 + 40.0 * min(t, 180.0) / 180.0) for t in range(0, 1801, 30)]
    with_warmup = series_figures(points, 180.0, RSS_MIB)
    assert with_warmup["start"] == 60.0
    assert with_warmup["slope_per_hour"] == pytest.approx(0.0)
    assert with_warmup["verdict"] == "flat"
    assert series_figures(points, 0.0, RSS_MIB)["verdict"] == "grows"


def test_a_steady_climb_beyond_the_bound_grows_and_a_drop_falls() -> None:
    bound = FLAT_PER_HOUR[RSS_MIB]
    assert series_figures(line(4 * bound), 0.0, RSS_MIB)["verdict"] == "grows"
    assert series_figures(line(-4 * bound), 0.0, RSS_MIB)["verdict"] == "falls"
    assert series_figures(line(bound / 2), 0.0, RSS_MIB)["verdict"] == "flat"


def test_a_slope_beyond_its_bound_but_within_twice_its_standard_error_is_noise_not_a_trend() -> None:
    assert verdict(12.0, 7.0, 10.0) == "flat"
    assert verdict(12.0, 5.0, 10.0) == "grows"
    # Open files that come and go (connections), fitted: -12 files/h +- 112, so flat.
    noisy = [(0.0, 100.0), (600.0, 140.0), (1200.0, 60.0), (1800.0, 120.0)]
    figures = series_figures(noisy, 0.0, OPEN_FILES)
    assert figures["slope_per_hour"] == pytest.approx(-12.0)
    assert abs(figures["slope_per_hour"]) > FLAT_PER_HOUR[OPEN_FILES]
    assert figures["verdict"] == "flat"


def test_a_trend_well_above_its_noise_grows_even_when_the_samples_are_noisy() -> None:
    rng = random.Random(7)
    points = [(t, 100.0 + 200.0 * t / HOUR + rng.uniform(-5.0, 5.0)) for t in range(0, 1801, 30)]
    assert series_figures(points, 0.0, OPEN_FILES)["verdict"] == "grows"


def test_the_verdict_is_unknown_without_a_slope() -> None:
    assert verdict(None, None, 5.0) == "?"
    assert series_figures([(0.0, 1.0)], 0.0, RSS_MIB)["verdict"] == "?"
    assert series_figures([], 0.0, RSS_MIB) == {
        "start": None, "middle": None, "end": None, "slope_per_hour": None, "slope_error_per_hour": None,
        "fitted_samples": 0, "verdict": "?"}


def test_every_kind_of_series_has_a_bound() -> None:
    assert set(FLAT_PER_HOUR) == {RSS_MIB, OPEN_FILES, REDIS_MIB, REDIS_KEYS, QUEUE_MESSAGES}


def test_process_rows_give_rss_in_mib_and_open_files_per_process() -> None:
    rss = {"api (pid 7)": [(t, value * MIB) for t, value in line(20.0, start=64.0)]}
    files = {"api (pid 7)": line(0.0, start=150.0)}
    [(name, row)] = process_rows(rss, files, 180.0).items()
    assert name == "api (pid 7)"
    assert (row["rss_mib"]["start"], row["rss_mib"]["verdict"]) == (64.0, "grows")
    assert row["rss_mib"]["slope_per_hour"] == pytest.approx(20.0)
    assert (row["open_files"]["end"], row["open_files"]["verdict"]) == (150.0, "flat")


def test_queue_rows_judge_each_queues_depth() -> None:
    rows = queue_rows({"tasks": line(0.0, start=0.0), "tasks.dead": line(600.0, start=0.0)}, 0.0)
    assert (rows["tasks"]["verdict"], rows["tasks.dead"]["verdict"]) == ("flat", "grows")


# How the tasks ended.

def test_tasks_are_told_apart_by_the_final_status_their_client_learnt_and_unnoticed_ones_are_lost() -> None:
    created = [("a", 100.0), ("b", 101.0), ("c", 102.0), ("d", 103.0)]
    notices = {"a": (105.0, "Completed"), "b": (107.0, "Internal provisioning exception"),
               "c": (104.0, "Task was cancelled")}
    outcome = soak_outcome(created, notices, seconds=2.0)
    assert {key: outcome[key] for key in ("created", "completed", "failed", "cancelled", "lost")} == {
        "created": 4, "completed": 1, "failed": 1, "cancelled": 1, "lost": 1}
    assert (outcome["created_per_second"], outcome["finished_per_second"]) == (2.0, 1.5)
    assert (outcome["to_final_p50_ms"], outcome["to_final_max_ms"]) == (5000.0, 6000.0)


def test_no_tasks_give_no_times() -> None:
    outcome = soak_outcome([], {}, seconds=60.0)
    assert (outcome["created"], outcome["lost"], outcome["to_final_p99_ms"]) == (0, 0, None)


# The row's leaks, and the report.

def soak_row() -> dict[str, Any]:
    flat, growing = line(0.0, start=64.0), line(30.0, start=64.0)
    return {
        "tag": "soak-30", "rate": 30.0, "minutes": 30.0, "delay_seconds": 5.0, "poll_interval_seconds": 2.0,
        "sample_seconds": 30.0, "task_ttl_seconds": 300, "warmup_seconds": 307.0, "samples": 61,
        "own_redis": True,
        "submit": {"p50_ms": 6.2, "p99_ms": 40.1, "errors": {}},
        "generator_max_lag_ms": 3.5,
        "outcome": soak_outcome([("a", 0.0), ("b", 1.0)], {"a": (5.5, "Completed")}, 2.0),
        "polls_per_task": 3.1, "poll_errors": {},
        "processes": {"api (pid 7)": {"rss_mib": series_figures(flat, 307.0, RSS_MIB),
                                      "open_files": series_figures(flat, 307.0, OPEN_FILES)},
                      "worker/child1.1 (pid 9)": {"rss_mib": series_figures(growing, 307.0, RSS_MIB),
                                                  "open_files": series_figures(flat, 307.0, OPEN_FILES)}},
        "redis_used_memory_mib": series_figures(line(0.0, start=40.0), 307.0, REDIS_MIB),
        "redis_keys": series_figures(line(0.0, start=36000.0), 307.0, REDIS_KEYS),
        "queues": queue_rows({"tasks": line(0.0, start=0.0)}, 307.0), "queue_prefix": "bench-1-soak-30-ab.",
        "cpu_seconds_per_1000_tasks": {"api": 3.4, "worker": 2.5}, "others_cpu_seconds": 900.1,
        "window_seconds": 1805.2, "sample_problems": [],
    }


def test_the_leaks_are_the_series_that_grow() -> None:
    row = soak_row()
    assert leaks(row) == ["worker/child1.1 (pid 9) RSS"]
    row["queues"] = queue_rows({"tasks.dead": line(600.0, start=0.0)}, 0.0)
    row["redis_keys"] = series_figures(line(20_000.0), 0.0, REDIS_KEYS)
    assert leaks(row) == ["worker/child1.1 (pid 9) RSS", "Redis keys", "tasks.dead depth"]


def soak_report(**phases: list[dict[str, Any]]) -> dict[str, Any]:
    row = soak_row()
    row["leaks"] = leaks(row)
    machine = {"cores": 2, "cpu": "Test CPU", "memory_gib": 7.8, "kernel": "6.1", "open_files_limit": 65536,
               "load_average_at_start": [0.5, 0.4, 0.3], "versions": {"python": "3.11.9"}}
    return {"started": "2026-12-01T15:00:00+00:00", "command": "task bench -- --phases soak", "machine": machine,
            "settings": {"clients": 2}, "api": [], "held": [], "rate": [], "notice": [], "soak": [row], **phases}


def rows_starting(text: str, start: str) -> list[str]:
    return [row for row in text.splitlines() if row.startswith(start)]


def test_the_soak_section_has_a_row_per_process_with_start_middle_end_slope_and_verdict() -> None:
    text = render(soak_report())
    assert "### Soak: 30 tasks/s for 30 min, stub delay 5 s, status polled every 2 s" in text
    assert rows_starting(text, "| api (pid 7) |") == [
        "| api (pid 7) | 64.0 / 64.0 / 64.0 | +0 ± 0 | flat | 64.0 / 64.0 / 64.0 | +0 ± 0 | flat |"]
    [worker] = rows_starting(text, "| worker/child1.1 (pid 9) |")
    assert worker.startswith("| worker/child1.1 (pid 9) | 64.0 / 71.5 / 79.0 | +30 ± 0 | grows |")


def test_the_soak_section_has_redis_the_queues_the_tasks_and_the_verdict() -> None:
    text = render(soak_report())
    assert rows_starting(text, "| Redis used_memory MiB |") == ["| Redis used_memory MiB | 40.0 / 40.0 / 40.0 | +0 ± 0 | flat |"]
    assert rows_starting(text, "| Redis keys |") == ["| Redis keys | 36000.0 / 36000.0 / 36000.0 | +0 ± 0 | flat |"]
    assert rows_starting(text, "| tasks ready messages |") == ["| tasks ready messages | 0.0 / 0.0 / 0.0 | +0 ± 0 | flat |"]
    assert "Queues by their names without the run's prefix `bench-1-soak-30-ab.`." in text
    assert "Tasks: created 2 (1.0/s; create p50 / p99 6.2 / 40.1 ms; errors none), completed 1, failed 0, " \
           "cancelled 0, lost 1;" in text
    assert "the first 307 s" in text
    assert "Verdict: growing: worker/child1.1 (pid 9) RSS; 1 tasks lost." in text


def test_a_short_soak_says_its_verdict_is_a_smoke_runs() -> None:
    report = soak_report()
    assert "smoke run" not in render(report)
    report["soak"][0]["minutes"] = 1.0
    assert "A 1-minute soak is a smoke run" in render(report)


def test_a_soak_alone_writes_its_own_block_and_leaves_the_other_phases_block_alone() -> None:
    [(begin, end, text)] = results_blocks(soak_report())
    assert (begin, end) == (SOAK_BEGIN, SOAK_END)
    assert "### Soak" in text
    current = f"# Results\n\n{BEGIN}\nthe last full run\n{END}\n\nby hand\n"
    updated = with_results_block(current, text, begin, end)
    assert updated.startswith(f"# Results\n\n{BEGIN}\nthe last full run\n{END}\n\nby hand\n\n{SOAK_BEGIN}\n")
    assert with_results_block(updated, "the next soak", begin, end).endswith(
        f"{SOAK_BEGIN}\nthe next soak\n{SOAK_END}\n")


def test_a_run_with_other_phases_and_the_soak_writes_both_blocks_each_with_its_own_phases() -> None:
    held = {"tag": "held-200", "delay_seconds": 2.0, "submit": {"per_second": 1.0, "p50_ms": 1.0, "p99_ms": 2.0},
            "outcome": {"submitted": 1, "completed": 1, "failed": 0, "lost": 0, "overhead_p50_ms": 1.0,
                        "overhead_p99_ms": 1.0, "overhead_max_ms": 1.0, "peak_running": 1},
            "resources": {"memory": {}, "cpu_seconds_per_1000_tasks": {}, "cpu_seconds": {}, "window_seconds": 1.0,
                          "processes": {}}, "profiles": {}}
    main, soak = results_blocks(soak_report(held=[held]))
    assert main[:2] == (BEGIN, END) and soak[:2] == (SOAK_BEGIN, SOAK_END)
    assert "### Held" in main[2] and "### Soak" not in main[2]
    assert "### Soak" in soak[2] and "### Held" not in soak[2]


def test_queues_are_named_without_the_runs_shared_prefix() -> None:
    prefix, labels = queue_labels(["bench-1-soak.tasks", "bench-1-soak.tasks.dead", "bench-1-soak.webhooks"])
    assert prefix == "bench-1-soak."
    assert labels == {"bench-1-soak.tasks": "tasks", "bench-1-soak.tasks.dead": "tasks.dead",
                      "bench-1-soak.webhooks": "webhooks"}
    assert queue_labels(["tasks_queue", "tasks_queue.dead", "results_queue"])[0] == ""
