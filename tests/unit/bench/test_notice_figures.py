"""The notice phase's figures: latency from the record's finishedAt to the client's receipt,
every created task either noticed or lost, and the issue's targets per run."""

from __future__ import annotations

from typing import Any

import pytest

from bench.notice_figures import (
    NoticeMode,
    client_processes,
    kib_per_waiter,
    notice_outcome,
    per_task_ms,
    targets,
)


def test_the_notice_latency_runs_from_the_final_status_write_to_the_client() -> None:
    created = [f"t{index}" for index in range(100)]
    finished = {task: (1000.0, "completed") for task in created}
    notices = {task: (1000.0 + (index + 1) / 1000, "Completed") for index, task in enumerate(created)}
    outcome = notice_outcome(created, notices, finished)
    assert (outcome["created"], outcome["noticed"], outcome["lost"]) == (100, 100, 0)
    assert (outcome["notice_p50_ms"], outcome["notice_p99_ms"], outcome["notice_max_ms"]) == (50.0, 99.0, 100.0)


def test_a_created_task_whose_final_status_never_reached_its_client_is_lost() -> None:
    finished = {"a": (10.0, "completed"), "b": (10.0, "completed"), "c": (None, "running")}
    outcome = notice_outcome(["a", "b", "c"], {"a": (10.5, "completed")}, finished)
    assert (outcome["noticed"], outcome["lost"], outcome["not_final"]) == (1, 2, 1)
    assert outcome["notice_p99_ms"] == 500.0


def test_each_mode_names_the_final_status_its_own_way_and_a_different_one_is_a_mismatch() -> None:
    finished = {"a": (1.0, "completed"), "b": (1.0, "failed"), "c": (1.0, "cancelled"), "d": (1.0, "completed")}
    notices = {"a": (1.0, "Completed"), "b": (1.0, "Internal provisioning exception"),
               "c": (1.0, "cancelled"), "d": (1.0, "failed")}
    assert notice_outcome(list(finished), notices, finished)["mismatched"] == 1


def test_no_notice_at_all_gives_no_latency_rather_than_a_made_up_one() -> None:
    outcome = notice_outcome(["a"], {}, {})
    assert (outcome["lost"], outcome["notice_p50_ms"], outcome["notice_max_ms"]) == (1, None, None)


@pytest.mark.parametrize(("mode", "held", "expected"), [
    (NoticeMode.LONG_POLL, 10_000, 2), (NoticeMode.SSE, 12_000, 3), (NoticeMode.SSE, 200, 2),
    (NoticeMode.POLL, 10_000, 2), (NoticeMode.WEBHOOK, 10_000, 2)])
def test_held_connections_are_spread_so_that_no_client_process_holds_more_than_5000(
        mode: NoticeMode, held: int, expected: int) -> None:
    assert client_processes(mode, held, clients=2) == expected


def test_cpu_and_memory_are_shared_over_the_tasks_and_the_waiting_clients() -> None:
    assert per_task_ms({"api": 12.5}, "api", 1000) == 12.5
    assert per_task_ms({"api": 12.5}, "api", 0) is None
    assert kib_per_waiter((100 * 2**20, 110 * 2**20), 1024) == 10.0
    assert kib_per_waiter(None, 10) is None


def row(mode: str, n: int, cpu: float, p99: float | None, lost: int = 0) -> dict[str, Any]:
    return {"mode": mode, "n": n, "api_cpu_ms_per_task": cpu, "outcome": {"lost": lost, "notice_p99_ms": p99}}


def test_long_poll_passes_the_cpu_target_at_half_of_pollings_cpu_at_the_same_n() -> None:
    rows = [row("poll", 2000, 10.0, 900.0), row("long-poll", 2000, 5.0, 50.0),
            row("poll", 10000, 8.0, 990.0), row("long-poll", 10000, 4.1, 50.0)]
    assert targets(rows[1], rows) == {"cpu": True, "p99": True, "lost": True}
    assert targets(rows[3], rows)["cpu"] is False


def test_the_latency_bound_is_100_ms_for_long_poll_and_sse_and_500_ms_for_webhooks() -> None:
    rows = [row("sse", 10, 1.0, 99.9), row("webhook", 10, 1.0, 499.0), row("sse", 20, 1.0, 100.0),
            row("webhook", 20, 1.0, None)]
    assert [targets(r, rows)["p99"] for r in rows] == [True, True, False, False]


def test_polling_has_no_latency_or_cpu_target_but_must_lose_nothing() -> None:
    rows = [row("poll", 10, 1.0, 5000.0, lost=1)]
    assert targets(rows[0], rows) == {"cpu": None, "p99": None, "lost": False}


def test_without_a_polling_run_at_the_same_n_the_cpu_target_is_not_judged() -> None:
    rows = [row("long-poll", 10, 1.0, 50.0)]
    assert targets(rows[0], rows)["cpu"] is None
