"""The report: one Markdown row per run with its figures, the generated block of RESULTS.md
replaced in place, and a BENCH_JSON line that reads back as the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import BEGIN, END, bench_json_line, parse_bench_json_line, render, with_results_block
from bench.sampling import LOAD_GENERATOR, OTHERS


def machine() -> dict[str, Any]:
    return {"cores": 2, "cpu": "Test CPU", "memory_gib": 7.8, "kernel": "6.1", "open_files_limit": 65536,
            "ephemeral_ports": 28232, "load_average_at_start": [0.5, 0.4, 0.3], "versions": {"python": "3.11.9", "sanic": "24.6"}}


def api_row() -> dict[str, Any]:
    create = {"per_second": 906.2, "p50_ms": 71.6, "p99_ms": 109.2, "errors": {}, "seconds": 4.0,
              "api_cpu_ms_per_request": 1.04, "profiles": {},
              "cpu_seconds": {"api": 3.5, LOAD_GENERATOR: 2.25, OTHERS: 0.4}}
    status = {"per_second": 2717.0, "p50_ms": 21.0, "p99_ms": 49.5, "errors": {"503": 2},
              "api_cpu_ms_per_request": 0.4, "profiles": {}}
    return {"api_workers": 1, "concurrency": 64, "create": create, "status": status}


def task_row(tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "tag": tag, "delay_seconds": 2.0,
        "submit": {"per_second": 891.4, "p50_ms": 60.0, "p99_ms": 164.0},
        "outcome": {"submitted": 200, "completed": 199, "failed": 1, "lost": 0, "overhead_p50_ms": 549.7,
                    "overhead_p99_ms": 724.7, "overhead_max_ms": 729.9, "peak_running": 180},
        "resources": {
            "memory": {"worker": {"kib_per_in_flight_task": 61.5}, "stub": {"kib_per_in_flight_task": 35.2}},
            "cpu_seconds_per_1000_tasks": {"api": 2.5, "worker": 2.9, "stub": 0.9, "redis": 0.3,
                                           "rabbitmq": 1.8, LOAD_GENERATOR: 1.1},
            "cpu_seconds": {OTHERS: 3.2}, "window_seconds": 9.5,
            "processes": {"worker/child1.0 (pid 42)": {"peak_rss_mib": 80.1, "peak_open_files": 210}},
        },
        "profiles": {},
        **extra,
    }


@pytest.fixture
def report() -> dict[str, Any]:
    return {"started": "2026-12-01T09:03:29+00:00", "command": "task bench -- --quick", "machine": machine(),
            "settings": {"clients": 2, "stub_delay_seconds": 2.0}, "api": [api_row()],
            "held": [task_row("held-200")], "rate": [task_row("rate-50", passed=False)]}


def lines_starting(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


def test_the_header_names_the_run_the_machine_and_the_settings(report: dict[str, Any]) -> None:
    text = render(report)
    assert text.startswith("Run 2026-12-01T09:03:29+00:00 — `task bench -- --quick`")
    assert ("Machine: 2 cores (Test CPU), 7.8 GiB, kernel 6.1, open files limit 65536, "
            "ephemeral ports 28232, load average") in text
    assert "Versions: python 3.11.9, sanic 24.6." in text
    assert "Settings: clients=2, stub_delay_seconds=2.0." in text


def test_an_api_run_is_one_row_with_rates_latencies_errors_and_cpu(report: dict[str, Any]) -> None:
    [row] = lines_starting(render(report), "| 1 |")
    assert row == ("| 1 | 2 x 32 | 906.2 | 71.6 / 109.2 | 2717.0 | 21.0 / 49.5 | - {'503': 2} "
                   "| 1.04 / 0.4 | 3.5 / 2.2 / 0.4 of 4.0 s |")


def test_a_held_run_has_its_outcome_row_its_cpu_row_and_its_processes(report: dict[str, Any]) -> None:
    text = render(report)
    assert "### Held concurrency (all N submitted at once), stub delay 2 s" in text
    outcome, cpu = lines_starting(text, "| held-200 |")
    assert outcome == ("| held-200 | 200 | 891.4 | 60.0 / 164.0 | 199 | 1 | 0 | 549.7 / 724.7 / 729.9 "
                       "| 180 | 61.5 | 35.2 |  |")
    assert cpu == "| held-200 | 2.5 | 2.9 | 0.9 | 0.3 | 1.8 | 1.1 | 3.2 of 9.5 s |"
    assert "- held-200: worker/child1.0 80.1 MiB / 210 files" in text


def test_a_rate_run_says_whether_it_passed(report: dict[str, Any]) -> None:
    outcome, _ = lines_starting(render(report), "| rate-50 |")
    assert outcome.endswith("| no |")


def test_a_rate_run_with_a_steady_window_gets_its_cpu_per_task_and_the_python_total(
        report: dict[str, Any]) -> None:
    steady = {"from_second": 70.0, "to_second": 120.0, "seconds": 50.0, "others_cpu_seconds": 1.5,
              "cpu_ms_per_task": {"api": 1.2, "worker": 1.5, "stub": 0.6, "redis": 0.3,
                                  "rabbitmq": 1.1, LOAD_GENERATOR: 0.9}}
    report["rate"] = [task_row("rate-250", passed=True, steady=steady)]
    (row,) = [line for line in lines_starting(render(report), "| rate-250 |") if " to " in line]
    assert row == "| rate-250 | 70 to 120 | 1.2 | 1.5 | 0.6 | **3.30** | 0.3 | 1.1 | 0.9 | 1.5 |"


def test_a_rate_run_without_a_steady_window_has_no_steady_table(report: dict[str, Any]) -> None:
    assert "steady state" not in render(report)


def test_phases_that_did_not_run_leave_no_section(report: dict[str, Any]) -> None:
    report |= {"api": [], "rate": []}
    text = render(report)
    assert "### API throughput" not in text
    assert "### Sustained rate" not in text
    assert "### Where the CPU goes" not in text


def test_profiles_are_summarized_by_run_and_process(report: dict[str, Any]) -> None:
    summary = {"samples": 769, "self_percent_by_package": {"uvloop": 29.0, "aiormq": 17.0}}
    report["held"][0]["profiles"] = {"worker/child1.0 (pid 42)": summary}
    text = render(report)
    assert ("- held-200, worker/child1.0 (pid 42), 769 samples; self time by package: uvloop 29.0%, "
            "aiormq 17.0%") in text


def test_the_bench_json_line_is_one_line_that_reads_back_as_the_report(report: dict[str, Any]) -> None:
    line = bench_json_line(report)
    assert line.startswith("BENCH_JSON {")
    assert "\n" not in line
    assert parse_bench_json_line(line) == report


def test_a_line_that_is_not_bench_json_is_refused() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        parse_bench_json_line("held-200: submitted 200")


def test_the_generated_block_is_replaced_and_the_hand_written_text_kept() -> None:
    current = f"# Results\n\nby hand\n\n{BEGIN}\nold table\n{END}\n\nmore by hand\n"
    updated = with_results_block(current, "new table")
    assert updated == f"# Results\n\nby hand\n\n{BEGIN}\nnew table\n{END}\n\nmore by hand\n"


def test_a_file_without_the_markers_gets_the_block_at_its_end() -> None:
    assert with_results_block("# Results\n\nby hand\n\n", "t") == f"# Results\n\nby hand\n\n{BEGIN}\nt\n{END}\n"


def test_no_file_yet_gets_a_title_and_the_block() -> None:
    assert with_results_block(None, "t") == f"# Benchmark results\n\n{BEGIN}\nt\n{END}\n"


def notice_row(mode: str, cpu: float, p99: float, **extra: Any) -> dict[str, Any]:
    return {
        "tag": f"notice-{mode}-200", "mode": mode, "n": 200, "delay_seconds": 30.0,
        "submit": {"errors": {}},
        "outcome": {"created": 200, "lost": 0, "notice_p50_ms": 12.0, "notice_p99_ms": p99,
                    "notice_max_ms": 80.0},
        "wait_errors": {}, "deliveries": {}, "wait_requests_per_task": 31.0, "api_cpu_ms_per_task": cpu,
        "peak_waiting": 190, "worker_cpu_ms_per_task": 5.2,
        "api_kib_per_waiting_client": 48.0, "api_peak_open_files": 409, "others_cpu_seconds": 2.9,
        "window_seconds": 37.2, **extra,
    }


def test_a_notice_run_is_one_row_with_latency_cost_memory_and_the_targets_it_meets(
        report: dict[str, Any]) -> None:
    report["notice"] = [notice_row("poll", 12.0, 990.0), notice_row("long-poll", 5.9, 66.4),
                        notice_row("webhook", 1.1, 1197.0, deliveries={"bad_signature": 2})]
    text = render(report)
    assert "### Completion notices (N tasks held, stub delay 30 s): polling, long-poll, SSE, webhooks" in text
    [poll] = lines_starting(text, "| notice-poll-200 |")
    assert poll == ("| notice-poll-200 | 200 | 0 | 12.0 / 990.0 / 80.0 | 31.0 | 12.0 | 5.2 | 190 | 48.0 | 409 | - "
                    "| 2.9 of 37.2 s | 0 lost: yes |")
    [long_poll] = lines_starting(text, "| notice-long-poll-200 |")
    assert long_poll.endswith("| CPU <= 0.5 x poll: yes; p99 < 100 ms: yes; 0 lost: yes |")
    [webhook] = lines_starting(text, "| notice-webhook-200 |")
    assert "{'bad signature': 2}" in webhook
    assert webhook.endswith("| p99 < 500 ms: no; 0 lost: yes |")


def test_a_report_without_notice_runs_has_no_notice_section(report: dict[str, Any]) -> None:
    assert "Completion notices" not in render(report)
