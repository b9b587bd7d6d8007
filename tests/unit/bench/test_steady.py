"""The steady window of a rate run: CPU per task once every call reuses a connection."""

from __future__ import annotations

from bench.options import parse_args
from bench.sampling import CLOCK_TICKS, OTHERS, SYSTEM, ProcessSampler, Snapshot
from bench.steady import STEADY_MARGIN_SECONDS, SteadyWindow


def sampler() -> ProcessSampler:
    return ProcessSampler({})


def test_a_run_too_short_for_a_window_has_none() -> None:
    options = parse_args(["--delay", "60", "--rate-seconds", "80"], {})
    assert SteadyWindow.of(options, sampler()) is None


def test_the_window_opens_after_the_delay_and_its_margin_and_closes_with_the_submission() -> None:
    options = parse_args(["--delay", "60", "--rate-seconds", "120"], {})
    window = SteadyWindow.of(options, sampler())
    assert window is not None
    window.cancel()
    assert (window.opens_after, window.closes_after) == (60 + STEADY_MARGIN_SECONDS, 120)


def test_cpu_per_task_is_the_window_cpu_over_the_tasks_the_rate_made_in_it() -> None:
    window = SteadyWindow(sampler(), 70.0, 120.0)
    members = {1: ("api", "api"), 2: ("worker", "worker")}
    window.snapshots = [
        Snapshot(at=10.0, ticks={1: 0, 2: 0}, system_ticks=0, members=members),
        Snapshot(at=60.0, ticks={1: 25 * CLOCK_TICKS, 2: 50 * CLOCK_TICKS},
                 system_ticks=100 * CLOCK_TICKS, members=members),
    ]
    figures = window.figures(rate=250.0)
    assert figures is not None
    # 50 s at 250 tasks/s = 12,500 tasks: 25 s of api CPU is 2 ms a task, 50 s of worker 4 ms.
    assert figures["seconds"] == 50.0
    assert figures["cpu_ms_per_task"] == {"api": 2.0, "worker": 4.0}
    assert SYSTEM not in figures["cpu_ms_per_task"] and OTHERS not in figures["cpu_ms_per_task"]
    assert figures["others_cpu_seconds"] == 25.0


def test_a_window_whose_snapshots_were_not_both_taken_has_no_figures() -> None:
    window = SteadyWindow(sampler(), 70.0, 120.0)
    assert window.figures(rate=250.0) is None
