"""The benchmark's figures: nearest-rank percentiles, rates of 200s, CPU per request and per
task, memory per task in flight, and the verdict of a sustained rate."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.figures import (
    cpu_ms_per_request,
    latency_figures,
    memory_figures,
    ms,
    overhead_figures,
    percentile,
    rate_passed,
    resource_figures,
)
from bench.jobs import ClientResult
from bench.outcomes import Outcomes
from bench.sampling import OTHERS, SYSTEM, CpuSplit


@pytest.mark.parametrize(("share", "expected"), [(0.0, 1.0), (0.5, 50.0), (0.99, 99.0), (1.0, 100.0)])
def test_a_percentile_is_the_nearest_rank_of_the_sorted_values(share: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, share) == expected


def test_the_percentile_of_few_values_rounds_the_rank_up() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert percentile([7.0], 0.5) == 7.0


def test_the_percentile_of_no_values_is_nan() -> None:
    assert math.isnan(percentile([], 0.5))


def test_seconds_read_as_milliseconds_to_a_tenth() -> None:
    assert ms(0.01234) == 12.3
    assert ms(2) == 2000.0


def client(latencies: list[float], statuses: dict[str, int], first: float, last: float,
           cpu: float = 0.0) -> ClientResult:
    return ClientResult(latencies=latencies, statuses=Counter(statuses), first=first, last=last,
                        cpu_seconds=cpu)


def test_latency_figures_merge_every_client_and_count_only_200s_in_the_rate() -> None:
    results = [
        client([0.010] * 98, {"200": 98}, first=100.0, last=110.0, cpu=1.25),
        client([0.020, 0.500], {"200": 1, "503": 1, "ClientOSError": 3}, first=101.0, last=108.0, cpu=0.5),
    ]
    figures = latency_figures(results)
    assert figures["requests"] == 103
    assert figures["ok"] == 99
    assert figures["errors"] == {"503": 1, "ClientOSError": 3}
    assert figures["seconds"] == 10.0  # from the first client's start to the last one's end
    assert figures["per_second"] == 9.9
    assert (figures["p50_ms"], figures["p99_ms"], figures["max_ms"]) == (10.0, 20.0, 500.0)
    assert figures["client_cpu_seconds"] == 1.8  # 1.75 rounded to a tenth, half to even


def test_latency_figures_of_nothing_answered_have_no_latency_and_no_rate() -> None:
    figures = latency_figures([client([], {"ClientConnectorError": 4}, first=5.0, last=6.0)])
    assert figures["ok"] == 0
    assert figures["per_second"] == 0.0
    assert math.isnan(figures["p50_ms"])
    assert figures["max_ms"] is None


def test_latency_figures_of_no_clients_are_empty_not_a_crash() -> None:
    figures = latency_figures([])
    assert (figures["requests"], figures["ok"], figures["errors"]) == (0, 0, {})


def test_cpu_per_request_is_the_groups_cpu_over_the_answered_requests() -> None:
    assert cpu_ms_per_request({"api": 2.0, "stub": 9.0}, "api", ok=1000) == 2.0
    assert cpu_ms_per_request({"api": 2.0}, "worker", ok=1000) == 0.0
    assert cpu_ms_per_request({"api": 0.5}, "api", ok=0) == 500.0  # no division by zero


def test_overhead_figures_give_the_outcome_and_the_time_past_the_delay() -> None:
    outcomes = Outcomes(submitted=5, completed=3, failed=1, lost=1, lost_statuses=Counter({"pending": 1}),
                        overheads=[0.1, 0.3, 0.2, 1.5], peak_running=4)
    figures = overhead_figures(outcomes)
    assert figures == {
        "submitted": 5, "completed": 3, "failed": 1, "lost": 1, "lost_statuses": {"pending": 1},
        "overhead_p50_ms": 200.0, "overhead_p99_ms": 1500.0, "overhead_max_ms": 1500.0,
        "peak_running": 4,
    }


def test_overhead_figures_of_no_finished_task_are_none_not_zero() -> None:
    figures = overhead_figures(Outcomes(submitted=2, lost=2))
    assert figures["overhead_p50_ms"] is figures["overhead_p99_ms"] is figures["overhead_max_ms"] is None


def test_memory_per_task_in_flight_is_the_growth_over_the_baseline() -> None:
    mib = 2**20
    memory = memory_figures({"worker": (100 * mib, 150 * mib), "redis": (1, 2)}, in_flight=1024)
    assert memory == {"worker": {"baseline_mib": 100.0, "peak_mib": 150.0, "kib_per_in_flight_task": 50.0}}
    assert memory_figures({"stub": (mib, 2 * mib)}, in_flight=0)["stub"]["kib_per_in_flight_task"] is None


def test_cpu_per_thousand_tasks_leaves_out_the_machine_and_the_others() -> None:
    cpu = CpuSplit(by_group={"api": 4.0, "worker": 6.0, SYSTEM: 30.0, OTHERS: 20.0},
                   by_role={"worker/child1.0": 3.0, "worker/child1.1": 3.0, "idle": 0.01})
    figures = resource_figures(cpu, {}, {"api (pid 1)": {"peak_rss_mib": 50.0}},
                               window_seconds=12.34, tasks=2000, in_flight=0)
    assert figures["cpu_seconds_per_1000_tasks"] == {"api": 2.0, "worker": 3.0}
    assert figures["cpu_seconds"][OTHERS] == 20.0
    assert figures["cpu_seconds_per_process"] == {"worker/child1.0": 3.0, "worker/child1.1": 3.0}
    assert figures["window_seconds"] == 12.3
    assert figures["processes"] == {"api (pid 1)": {"peak_rss_mib": 50.0}}


def test_cpu_per_thousand_tasks_of_no_task_is_nan() -> None:
    figures = resource_figures(CpuSplit({"api": 1.0}, {}), {}, {}, window_seconds=1, tasks=0, in_flight=0)
    assert math.isnan(figures["cpu_seconds_per_1000_tasks"]["api"])


@pytest.mark.parametrize(("creates", "outcome", "passed"), [
    ({"errors": {}, "p99_ms": 40.0}, {"lost": 0, "overhead_p99_ms": 900.0}, True),
    ({"errors": {}, "p99_ms": 40.0}, {"lost": 1, "overhead_p99_ms": 900.0}, False),
    ({"errors": {"503": 1}, "p99_ms": 40.0}, {"lost": 0, "overhead_p99_ms": 900.0}, False),
    ({"errors": {}, "p99_ms": 100.0}, {"lost": 0, "overhead_p99_ms": 900.0}, False),
    ({"errors": {}, "p99_ms": 40.0}, {"lost": 0, "overhead_p99_ms": 1000.0}, False),
    ({"errors": {}, "p99_ms": 40.0}, {"lost": 0, "overhead_p99_ms": None}, False),
])
def test_a_sustained_rate_passes_only_when_every_goal_is_met(creates: dict[str, object],
                                                             outcome: dict[str, object], passed: bool) -> None:
    assert rate_passed(creates, outcome) is passed
