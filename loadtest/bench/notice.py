"""The ``notice`` phase: for each N of ``--notice-held`` and each mode of ``--notice-modes``, a
platform of its own gets N tasks as fast as the API takes them (stub delay
``--notice-delay``), and every task's client waits for its end in that mode:

    poll       a status read every ``--notice-poll-interval`` (1 s)
    long-poll  ``?wait=`` (``--notice-wait``, 25 s) again and again, one connection per task
    sse        the task's event stream, one connection per task
    webhook    nothing: the create names ``callbackUrl``, the devkit's receiver (in this
               process) verifies each signed delivery and notes when it arrived

A row per run: Service B (and worker pool) CPU ms per task over the whole run (creates
included, the same for every mode), completion-notice latency, Service B memory per waiting
client (its RSS growth over the most clients that waited at once, as the progress lines saw
them every 10 s), tasks lost, and the issue's targets (``notice_figures.targets``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpe_devkit.stack import Stack
from cpe_devkit.webhook_receiver import WebhookReceiver, new_secret

from .clients import run_clients
from .figures import latency_figures
from .jobs import ClientJob, ClientResult, plan_jobs
from .launch import bench_environment, cert_dir, running_platform, target
from .notice_figures import (
    HELD_CONNECTION_MODES,
    MODE_JOBS,
    NoticeMode,
    client_processes,
    kib_per_waiter,
    mib,
    notice_outcome,
    per_task_ms,
)
from .options import BenchOptions
from .outcomes import read_finished
from .profiling import Profiler
from .progress import read_progress
from .sampling import OTHERS, ProcessSampler, Snapshot, cpu_between
from .waiters import REQUESTS

SETTLE_BEFORE_LOAD_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 10.0
WAITER_MARGIN = 1000  # API_MAX_WAITERS above N: reconnecting waiters may overlap their old selves


def notice_environment(options: BenchOptions, tag: str, held: int, secret: str, work_dir: Path
                       ) -> dict[str, str]:
    """One run's platform: the benchmark's, with the notice delay, room for N waiters per
    Service B process, and webhooks to this machine's receiver allowed (in every mode, so that
    the platforms compared differ in nothing but the clients)."""
    environment = bench_environment(options, tag, api_workers=options.api_workers[0], work_dir=work_dir)
    environment.update({
        "STUB_DELAY_SECONDS": f"{options.notice_delay:g}",
        "API_MAX_WAITERS": str(held + WAITER_MARGIN),
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_SECRET": secret, "WEBHOOK_CA_FILE": str(cert_dir() / "ca.pem"),
    })
    environment.update(options.platform_overrides)  # --platform-env has the last word
    return environment


class NoticeRun:
    """One mode at one N: the platform, the clients (and the receiver), the row."""

    def __init__(self, options: BenchOptions, work_dir: Path, profiler: Profiler,
                 sampler_for: Callable[[Stack], ProcessSampler], mode: NoticeMode, held: int) -> None:
        self.options, self.work_dir, self.profiler = options, work_dir, profiler
        self.sampler_for = sampler_for
        self.mode, self.held = mode, held
        self.tag = f"notice-{mode}-{held}"
        self.progress_dir = work_dir / "progress" / self.tag
        self.progress_dir.mkdir(parents=True, exist_ok=True)
        self.peak_waiting = 0  # created but not yet told, at most, as the progress lines saw it

    def run(self) -> dict[str, Any]:
        secret = new_secret()
        environment = notice_environment(self.options, self.tag, self.held, secret, self.work_dir)
        with WebhookReceiver(cert_dir(), secret) as receiver, \
                running_platform(environment, self.work_dir / "logs" / self.tag) as stack:
            sampler = self.sampler_for(stack)
            sampler.start()
            try:
                time.sleep(SETTLE_BEFORE_LOAD_SECONDS)
                baseline_at = time.monotonic()
                before = sampler.snapshot()
                jobs = self._jobs(stack, receiver)
                self.profiler.start_later(jobs[0].start_at - time.time(), self.tag, sampler)
                results = run_clients(jobs, self._progress(sampler, receiver), every=PROGRESS_EVERY_SECONDS)
                created = [task_id for result in results for _, task_id in result.tasks]
                last_create = max((result.last for result in results), default=time.time())
                notices, deliveries = self._notices(results, receiver, created,
                                                    last_create + jobs[0].notice_seconds)
                after = sampler.snapshot()
            finally:
                sampler.stop()
                profiles = self.profiler.finish()
            finished = asyncio.run(read_finished(environment, created))
            return self._row(results, created, notices, finished, deliveries, sampler, before, after,
                             baseline_at, profiles)

    def _jobs(self, stack: Stack, receiver: WebhookReceiver) -> list[ClientJob]:
        options, mode = self.options, self.mode
        wait_seconds = {NoticeMode.POLL: options.notice_poll_interval,
                        NoticeMode.LONG_POLL: options.notice_wait}.get(mode, 0.0)
        return plan_jobs(target(stack), MODE_JOBS[mode], client_processes(mode, self.held, options.clients),
                         options.submit_concurrency, count=self.held,
                         callback_url=receiver.url if mode is NoticeMode.WEBHOOK else "",
                         wait_seconds=wait_seconds, notice_seconds=options.notice_delay + options.settle,
                         progress_dir=str(self.progress_dir))

    def _progress(self, sampler: ProcessSampler, receiver: WebhookReceiver) -> Callable[[], None]:
        started = time.monotonic()

        def report() -> None:
            counts = read_progress(self.progress_dir)
            if self.mode is NoticeMode.WEBHOOK:
                counts["noticed"] = len({call.webhook_id for call in receiver.received if call.verified})
            self.peak_waiting = max(self.peak_waiting, counts["created"] - counts["noticed"])
            processes = sampler.peaks(("api",))
            files = max((process["peak_open_files"] for process in processes.values()), default=0)
            print(f"  {self.tag} +{time.monotonic() - started:.0f}s: created {counts['created']} "
                  f"noticed {counts['noticed']}, waiters' requests {counts['wait_requests']} "
                  f"errors {counts['wait_errors']}; "
                  f"Service B peak open files {files}", flush=True)

        return report

    def _notices(self, results: list[ClientResult], receiver: WebhookReceiver, created: list[str],
                 deadline_at: float) -> tuple[dict[str, tuple[float, str]], dict[str, int]]:
        """Task id -> (when its final status arrived, the status), and the receiver's tally;
        webhooks are waited for until ``deadline_at`` (the last create's notice deadline)."""
        if self.mode is not NoticeMode.WEBHOOK:
            return {task_id: notice for result in results for task_id, notice in result.notices.items()}, {}
        waiting, last_print = set(created), time.monotonic()
        while waiting and time.time() < deadline_at:
            for call in receiver.received:
                if call.verified and isinstance(call.data, dict):
                    waiting.discard(str(call.data.get("taskId")))
            if time.monotonic() - last_print > PROGRESS_EVERY_SECONDS:
                print(f"  {self.tag}: {len(created) - len(waiting)} of {len(created)} webhooks received",
                      flush=True)
                self.peak_waiting = max(self.peak_waiting, len(waiting))
                last_print = time.monotonic()
            time.sleep(0.5)
        notices: dict[str, tuple[float, str]] = {}
        tally: Counter[str] = Counter()
        for call in receiver.received:
            if not call.verified:
                tally["bad_signature"] += 1
                continue
            tally["verified"] += 1
            data = call.data if isinstance(call.data, dict) else {}
            task_id = str(data.get("taskId"))
            if task_id in notices:
                tally["duplicate"] += 1
            else:
                notices[task_id] = (call.received_wall, str(data.get("status")))
        return notices, dict(tally)

    def _row(self, results: list[ClientResult], created: list[str], notices: dict[str, tuple[float, str]],
             finished: dict[str, tuple[float | None, str]], deliveries: dict[str, int],
             sampler: ProcessSampler, before: Snapshot, after: Snapshot, baseline_at: float,
             profiles: dict[str, Any]) -> dict[str, Any]:
        cpu = cpu_between(before, after).by_group
        rss = sampler.rss_between(baseline_at, after.at)
        wait_errors: Counter[str] = Counter()
        for result in results:
            wait_errors.update(result.wait_errors)
        wait_requests = wait_errors.pop(REQUESTS, 0)
        waiters = len(created) if self.mode in HELD_CONNECTION_MODES else 0
        api_processes = sampler.peaks(("api",))
        outcome = notice_outcome(created, notices, finished)
        row: dict[str, Any] = {
            "tag": self.tag, "mode": str(self.mode), "n": self.held,
            "delay_seconds": self.options.notice_delay,
            "clients": len(results), "submit": latency_figures(results), "outcome": outcome,
            "wait_errors": dict(wait_errors), "deliveries": deliveries,
            "wait_requests_per_task": round(wait_requests / len(created), 1) if created else None,
            "api_cpu_ms_per_task": per_task_ms(cpu, "api", len(created)),
            "worker_cpu_ms_per_task": per_task_ms(cpu, "worker", len(created)),
            "cpu_seconds": {group: round(value, 1) for group, value in sorted(cpu.items())},
            "window_seconds": round(after.at - before.at, 1),
            "others_cpu_seconds": round(cpu.get(OTHERS, 0.0), 1),
            "api_rss_mib": [mib(value) for value in rss.get("api", (0, 0))],
            "peak_waiting": self.peak_waiting,
            "api_kib_per_waiting_client": kib_per_waiter(rss.get("api"), self.peak_waiting or len(created)),
            "api_peak_open_files": max((p["peak_open_files"] for p in api_processes.values()), default=0),
            "held_connections": waiters,
            "profiles": profiles,
        }
        print(f"{self.tag}: created {outcome['created']} (create p99 {row['submit']['p99_ms']} ms); "
              f"noticed {outcome['noticed']} lost {outcome['lost']}; notice p50 {outcome['notice_p50_ms']} "
              f"p99 {outcome['notice_p99_ms']} max {outcome['notice_max_ms']} ms; Service B "
              f"{row['api_cpu_ms_per_task']} ms CPU/task, {row['api_kib_per_waiting_client']} KiB/client",
              flush=True)
        return row
