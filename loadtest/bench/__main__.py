"""``python -m bench``: options in, the phases run, the report out (see the package's docstring)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provisioning.certs import ensure_certificates

from .launch import cert_dir, service_urls, worker_prefetch
from .machine import machine_facts, raise_open_files_limit, service_versions
from .options import ALL_PHASES, REPO, RESULTS_FILE, BenchOptions, parse_args
from .phases import Bench
from .report import bench_json_line, render, results_blocks, write_results


def settings(options: BenchOptions, open_files: tuple[int, int]) -> dict[str, Any]:
    """The settings a reader needs beside the figures."""
    return {
        "clients": options.clients, "stub_delay_seconds": options.delay,
        "API_WORKERS": list(options.api_workers), "STUB_WORKERS": options.stub_workers,
        "WORKER_PROCESSES": options.worker_processes, "WORKER_PREFETCH": worker_prefetch(options),
        "submit_concurrency": options.submit_concurrency, "api_concurrency": list(options.api_concurrency),
        "api_seconds": options.api_seconds, "rate_seconds": options.rate_seconds,
        "settle_seconds": options.settle,
        "notice_delay_seconds": options.notice_delay, "notice_poll_interval": options.notice_poll_interval,
        "notice_wait": options.notice_wait,
        **(soak_settings(options) if "soak" in options.phases else {}),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "OTEL_SDK_DISABLED": os.environ.get("OTEL_SDK_DISABLED", "false"),
        "open_files": f"{open_files[0]}/{open_files[1]}", **options.platform_overrides,
    }


def soak_settings(options: BenchOptions) -> dict[str, Any]:
    return {"soak_rate": options.soak_rate, "soak_minutes": options.soak_minutes,
            "soak_delay_seconds": options.soak_delay, "soak_poll_interval": options.soak_poll_interval,
            "soak_sample_seconds": options.soak_sample_seconds,
            "soak_task_ttl_seconds": options.soak_task_ttl}


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    open_files = raise_open_files_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work_dir = (REPO / options.reports / f"bench-{stamp}").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    ensure_certificates(cert_dir())
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "task bench -- " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_facts(),
        "settings": settings(options, open_files),
    }
    report["machine"]["versions"].update(asyncio.run(service_versions(*service_urls(options))))
    print(f"benchmark {report['command']} -> {work_dir}", flush=True)
    bench = Bench(options, work_dir)
    for phase in ALL_PHASES:
        if phase in options.phases:
            bench.run(phase)
            # What is measured so far survives a later phase's failure.
            (work_dir / "results.partial.json").write_text(
                json.dumps({**report, **bench.results}, indent=2, default=str))
    report.update(bench.results)
    text = render(report)
    print("\n" + text)
    (work_dir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (work_dir / "RESULTS.md").write_text(text + "\n")
    results_path = Path(options.results) if options.results else (None if options.quick else RESULTS_FILE)
    if results_path is not None:
        for begin, end, block in results_blocks(report):
            write_results(results_path, block, begin, end)
        print(f"results written to {results_path}")
    print(bench_json_line(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
