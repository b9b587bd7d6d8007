"""The report of a benchmark: Markdown tables for people, the generated block of RESULTS.md,
and one ``BENCH_JSON`` line for machines. Pure: the report dictionary in, text out.

The report is a JSON-shaped dictionary (what ``results.json`` holds): ``started``,
``command``, ``machine``, ``settings``, and one list of rows per phase (``api``, ``held``,
``rate``, ``notice``, ``soak``), each row as ``phases`` (and ``notice``, ``soak``) builds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .notice_figures import CPU_SHARE_OF_POLLING, P99_TARGET_MS, NoticeMode, targets
from .sampling import LOAD_GENERATOR, OTHERS

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# The soak's block of its own: a soak run leaves the other phases' block alone, and they its.
SOAK_BEGIN, SOAK_END = "<!-- bench:soak:begin -->", "<!-- bench:soak:end -->"
JSON_PREFIX = "BENCH_JSON "


SHORT_SOAK_MINUTES = 10  # shorter, a soak's verdict says it is a smoke run
PYTHON_GROUPS = ("api", "worker", "stub")  # the platform's own Python processes
TASK_PHASES = (("held", "Held concurrency (all N submitted at once)"), ("rate", "Sustained rate (open loop)"))


def render(report: dict[str, Any]) -> str:
    """The whole report as Markdown: the run and the machine, then a section per phase run."""
    lines = _run_header(report)
    if report["api"]:
        lines += _api_section(report["api"], report["settings"]["clients"])
    for phase, title in TASK_PHASES:
        if report[phase]:
            lines += _tasks_section(report[phase], title)
    if report.get("notice"):
        lines += _notice_section(report["notice"])
    if report.get("soak"):
        lines += _soak_section(report["soak"])
    lines += _profiles_section(report)
    return "\n".join(lines)


def results_blocks(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(begin marker, end marker, text) of each RESULTS.md block this run writes: the soak's
    figures in a block of their own, the other phases' in the main one."""
    blocks = []
    if any(report.get(phase) for phase in ("api", "held", "rate", "notice")):
        blocks.append((BEGIN, END, render({**report, "soak": []})))
    if report.get("soak"):
        blocks.append((SOAK_BEGIN, SOAK_END, render({**report, "api": [], "held": [], "rate": [],
                                                     "notice": []})))
    return blocks


def _run_header(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    return [
        f"Run {report['started']} — `{report['command']}`",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"kernel {machine['kernel']}, open files limit {machine['open_files_limit']}, "
        f"ephemeral ports {machine.get('ephemeral_ports', 'unknown')}, "
        f"load average at start {machine['load_average_at_start']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()) + ".",
        "",
    ]


def _api_section(rows: list[dict[str, Any]], clients: int) -> list[str]:
    lines = ["### API throughput (Service B and the stub only; HTTPS keep-alive)", "",
             "| API_WORKERS | clients x concurrency | create req/s | create p50 / p99 ms "
             "| status req/s | status p50 / p99 ms | errors "
             "| API CPU ms per create / status | CPU s api / load generator / others (create) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        create, status = row["create"], row["status"]
        cpu = create["cpu_seconds"]
        lines.append(
            f"| {row['api_workers']} | {clients} x {row['concurrency'] // clients} "
            f"| {create['per_second']} | {create['p50_ms']} / {create['p99_ms']} "
            f"| {status['per_second']} | {status['p50_ms']} / {status['p99_ms']} "
            f"| {create['errors'] or '-'} {status['errors'] or ''} "
            f"| {create['api_cpu_ms_per_request']} / {status['api_cpu_ms_per_request']} "
            f"| {cpu.get('api', 0):.1f} / {cpu.get(LOAD_GENERATOR, 0):.1f} / "
            f"{cpu.get(OTHERS, 0):.1f} of {create['seconds']} s |")
    return [*lines, ""]


def _tasks_section(rows: list[dict[str, Any]], title: str) -> list[str]:
    lines = [f"### {title}, stub delay {rows[0]['delay_seconds']:g} s", "",
             "| run | submitted | submit rate /s | create p50 / p99 ms | completed | failed | lost "
             "| overhead p50 / p99 / max ms | peak running | worker KiB/task | stub KiB/task | pass |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        outcome, submit, memory = row["outcome"], row["submit"], row["resources"]["memory"]
        passed = "" if "passed" not in row else "yes" if row["passed"] else "no"
        lines.append(
            f"| {row['tag']} | {outcome['submitted']} | {submit['per_second']} "
            f"| {submit['p50_ms']} / {submit['p99_ms']} "
            f"| {outcome['completed']} | {outcome['failed']} | {outcome['lost']} "
            f"| {outcome['overhead_p50_ms']} / {outcome['overhead_p99_ms']} "
            f"/ {outcome['overhead_max_ms']} "
            f"| {outcome['peak_running']} | {memory.get('worker', {}).get('kib_per_in_flight_task')} "
            f"| {memory.get('stub', {}).get('kib_per_in_flight_task')} | {passed} |")
    lines += ["", "CPU seconds per 1,000 tasks (whole run: submission, the delay, completion):", "",
              "| run | api | worker | stub | redis | rabbitmq | load generator "
              "| others (not this benchmark, total s) |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        per = row["resources"]["cpu_seconds_per_1000_tasks"]
        total = row["resources"]["cpu_seconds"]
        lines.append(
            f"| {row['tag']} | {per.get('api', 0)} | {per.get('worker', 0)} | {per.get('stub', 0)} "
            f"| {per.get('redis', 0)} | {per.get('rabbitmq', 0)} | {per.get(LOAD_GENERATOR, 0)} "
            f"| {total.get(OTHERS, 0)} of {row['resources']['window_seconds']} s |")
    steady = [row for row in rows if row.get("steady")]
    if steady:
        lines += ["", "CPU ms per task in steady state (from the delay + 10 s after the "
                  "clients started to the end of the submission, every call on a connection "
                  "already open; meaningful for a run that kept up):", "",
                  "| run | window s | api | worker | stub | Python (api + worker + stub) | redis "
                  "| rabbitmq | load generator | others (total s) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in steady:
            window, per = row["steady"], row["steady"]["cpu_ms_per_task"]
            python = sum(per.get(group, 0.0) for group in PYTHON_GROUPS)
            lines.append(
                f"| {row['tag']} | {window['from_second']:g} to {window['to_second']:g} "
                f"| {per.get('api', 0)} | {per.get('worker', 0)} | {per.get('stub', 0)} "
                f"| **{python:.2f}** | {per.get('redis', 0)} | {per.get('rabbitmq', 0)} "
                f"| {per.get(LOAD_GENERATOR, 0)} | {window['others_cpu_seconds']} |")
    lines += ["", "Peak RSS (MiB) and open files per process:", ""]
    for row in rows:
        lines.append(f"- {row['tag']}: " + "; ".join(
            f"{name.split(' (')[0]} {process['peak_rss_mib']} MiB / {process['peak_open_files']} files"
            for name, process in row["resources"]["processes"].items()))
    return [*lines, ""]


def _series_cells(figures: dict[str, Any]) -> str:
    """start / middle / end | slope per hour ± its standard error | verdict"""
    slope, error = figures["slope_per_hour"], figures["slope_error_per_hour"]
    fitted = "-" if slope is None else f"{slope:+g} ± {error:g}"
    return f"{figures['start']} / {figures['middle']} / {figures['end']} | {fitted} | {figures['verdict']}"


def _soak_intro(row: dict[str, Any]) -> list[str]:
    redis = "a redis-server of the run's own" if row["own_redis"] else "shared with whatever else uses it"
    return [
        f"### Soak: {row['rate']:g} tasks/s for {row['minutes']:g} min, "
        f"stub delay {row['delay_seconds']:g} s, status polled every {row['poll_interval_seconds']:g} s", "",
        f"Samples every {row['sample_seconds']:g} s ({row['samples']}). Slopes: least-squares fits over the "
        f"samples after the first {row['warmup_seconds']:g} s (the warm-up: 10 % of the run, or "
        f"TASK_TTL_SECONDS={row['task_ttl_seconds']} + the delay + a poll when longer), ± the slope's "
        f"standard error; flat = within the bound or within 2 standard errors. Redis: {redis}.", ""]


def _soak_tasks(row: dict[str, Any]) -> list[str]:
    outcome, submit = row["outcome"], row["submit"]
    return [
        f"Tasks: created {outcome['created']} ({outcome['created_per_second']}/s; create p50 / p99 "
        f"{submit['p50_ms']} / {submit['p99_ms']} ms; errors {submit['errors'] or 'none'}), "
        f"completed {outcome['completed']}, failed {outcome['failed']}, cancelled {outcome['cancelled']}, "
        f"lost {outcome['lost']}; finished {outcome['finished_per_second']}/s; create to final status "
        f"p50 / p99 / max {outcome['to_final_p50_ms']} / {outcome['to_final_p99_ms']} / "
        f"{outcome['to_final_max_ms']} ms; {row['polls_per_task']} status reads per task (errors "
        f"{row['poll_errors'] or 'none'}); generator lag at worst {row['generator_max_lag_ms']} ms.", ""]


def _soak_tables(row: dict[str, Any]) -> list[str]:
    prefix = row.get("queue_prefix")
    lines = [f"Queues by their names without the run's prefix `{prefix}`." if prefix else "", "",
             "| process | RSS MiB start / middle / end | RSS slope MiB/h | RSS "
             "| open files start / middle / end | open files slope /h | open files |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {_series_cells(process['rss_mib'])} | {_series_cells(process['open_files'])} |"
              for name, process in row["processes"].items()]
    lines += ["", "| Redis and queues | start / middle / end | slope /h | verdict |", "|---|---|---|---|",
              f"| Redis used_memory MiB | {_series_cells(row['redis_used_memory_mib'])} |",
              f"| Redis keys | {_series_cells(row['redis_keys'])} |"]
    lines += [f"| {queue} ready messages | {_series_cells(figures)} |"
              for queue, figures in row["queues"].items()]
    return [*lines, ""]


def _soak_section(rows: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for row in rows:
        cpu = ", ".join(f"{group} {value}" for group, value in row["cpu_seconds_per_1000_tasks"].items())
        lines += [*_soak_intro(row), *_soak_tasks(row), *_soak_tables(row),
                  f"CPU seconds per 1,000 tasks: {cpu}; others (not this benchmark) "
                  f"{row['others_cpu_seconds']} s of {row['window_seconds']} s.", ""]
        if row["sample_problems"]:
            lines += ["Samples that could not be read: " + "; ".join(row["sample_problems"]), ""]
        lost = row["outcome"]["lost"]
        growing = ", ".join(row["leaks"])
        short = (f" A {row['minutes']:g}-minute soak is a smoke run: its slopes extrapolate minutes of "
                 "warming up to an hour." if row["minutes"] < SHORT_SOAK_MINUTES else "")
        lines += [f"Verdict: {'growing: ' + growing if growing else 'nothing grows'}; "
                  f"{'no task lost' if lost == 0 else f'{lost} tasks lost'}.{short}", ""]
    return lines


def _verdict(passed: bool | None) -> str:
    return "yes" if passed else "no"


def notice_targets_cell(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The issue's targets that apply to one run, each with its verdict."""
    verdicts = targets(row, rows)
    cells = []
    if verdicts["cpu"] is not None:
        cells.append(f"CPU <= {CPU_SHARE_OF_POLLING:g} x poll: {_verdict(verdicts['cpu'])}")
    if verdicts["p99"] is not None:
        cells.append(f"p99 < {P99_TARGET_MS[NoticeMode(row['mode'])]:g} ms: {_verdict(verdicts['p99'])}")
    cells.append(f"0 lost: {_verdict(verdicts['lost'])}")
    return "; ".join(cells)


def _notice_section(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"### Completion notices (N tasks held, stub delay {rows[0]['delay_seconds']:g} s): "
             "polling, long-poll, SSE, webhooks", "",
             "Notice latency: when the final status reached the client (webhooks: the receiver) minus the "
             "record's finishedAt. CPU per task: the whole run (the create included) over the tasks created.",
             "",
             "| run | created | lost | notice p50 / p99 / max ms | waiters' requests/task "
             "| Service B CPU ms/task | worker CPU ms/task "
             "| peak waiting | Service B KiB per waiting client | Service B peak open files "
             "| errors (creates, waiters) "
             "| others CPU s of window | targets |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        outcome = row["outcome"]
        errors = {**row["wait_errors"], **row["submit"]["errors"]}
        bad = row["deliveries"].get("bad_signature", 0)
        if bad:
            errors["bad signature"] = bad
        lines.append(
            f"| {row['tag']} | {outcome['created']} | {outcome['lost']} "
            f"| {outcome['notice_p50_ms']} / {outcome['notice_p99_ms']} / {outcome['notice_max_ms']} "
            f"| {row.get('wait_requests_per_task')} | {row['api_cpu_ms_per_task']} "
            f"| {row['worker_cpu_ms_per_task']} | {row.get('peak_waiting')} "
            f"| {row['api_kib_per_waiting_client']} | {row['api_peak_open_files']} | {errors or '-'} "
            f"| {row['others_cpu_seconds']} of {row['window_seconds']} s "
            f"| {notice_targets_cell(row, rows)} |")
    return [*lines, ""]


def _profiles_section(report: dict[str, Any]) -> list[str]:
    profiled = [(f"{row['api_workers']}w c{row['concurrency']} {kind}", row[kind]["profiles"])
                for row in report["api"] for kind in ("create", "status") if row[kind].get("profiles")]
    profiled += [(row["tag"], row["profiles"]) for phase in (*(name for name, _ in TASK_PHASES), "notice")
                 for row in report.get(phase, []) if row.get("profiles")]
    if not profiled:
        return []
    lines = ["### Where the CPU goes (py-spy, share of on-CPU samples)", ""]
    for tag, processes in profiled:
        for name, summary in processes.items():
            shares = summary["self_percent_by_package"].items()
            top = ", ".join(f"{package} {value}%" for package, value in shares)
            lines.append(f"- {tag}, {name}, {summary['samples']} samples; self time by package: {top}")
    return [*lines, ""]


def with_results_block(current: str | None, text: str, begin: str = BEGIN, end: str = END) -> str:
    """A results file's text with its generated block (between the markers) replaced by
    ``text``, or added at its end; a new file when there is none."""
    block = f"{begin}\n{text}\n{end}"
    if current is None:
        return f"# Benchmark results\n\n{block}\n"
    if begin in current and end in current:
        head, _, rest = current.partition(begin)
        _, _, tail = rest.partition(end)
        return head + block + tail
    return current.rstrip() + "\n\n" + block + "\n"


def write_results(path: Path, text: str, begin: str = BEGIN, end: str = END) -> None:
    path.write_text(with_results_block(path.read_text() if path.exists() else None, text, begin, end))


def bench_json_line(report: dict[str, Any]) -> str:
    """The whole report on one line, for a machine to pick out of the output."""
    return JSON_PREFIX + json.dumps(report, default=str, separators=(",", ":"))


def parse_bench_json_line(line: str) -> dict[str, Any]:
    """The report back from its ``BENCH_JSON`` line."""
    if not line.startswith(JSON_PREFIX):
        raise ValueError(f"not a {JSON_PREFIX.strip()} line: {line[:40]!r}")
    report: dict[str, Any] = json.loads(line.removeprefix(JSON_PREFIX))
    return report
