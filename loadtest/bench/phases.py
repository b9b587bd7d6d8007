"""The five phases: each starts the platform it needs, drives it with the client processes,
samples the machine meanwhile, and appends one row per run to the results (and prints a
progress line)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpe_devkit.stack import Stack

from .clients import run_clients
from .figures import (
    cpu_ms_per_request,
    latency_figures,
    ms,
    overhead_figures,
    rate_passed,
    resource_figures,
)
from .jobs import ClientJob, ClientResult, JobKind, plan_jobs
from .launch import bench_environment, running_platform, service_ports, target
from .machine import ephemeral_ports, port_range_warning
from .notice import NoticeRun
from .notice_figures import NoticeMode
from .options import ALL_PHASES, BenchOptions
from .outcomes import Outcomes, follow_outcomes
from .profiling import Profiler
from .progress import read_progress
from .sampling import LOAD_GENERATOR, ProcessSampler, cpu_between, listening_pid
from .soak import SoakRun
from .steady import SteadyWindow

STATUS_READ_TASKS = 2000  # created tasks per client whose status the readers pick from
SETTLE_BEFORE_LOAD_SECONDS = 1.0
PLATFORM_GROUPS = ("api", "worker", "stub")
SAMPLE_SECONDS = 0.5  # the process sampler's interval in the short phases
PROGRESS_EVERY_SECONDS = 10.0  # a progress line while a held or rate run submits and completes


class Bench:
    """The runs of one benchmark and their rows, by phase."""

    def __init__(self, options: BenchOptions, work_dir: Path) -> None:
        self.options = options
        self.work_dir = work_dir
        self.results: dict[str, list[dict[str, Any]]] = {phase: [] for phase in ALL_PHASES}
        self.profiler = Profiler(work_dir / "profiles", options.profile)

    def run(self, phase: str) -> None:
        {"api": self.phase_api, "held": self.phase_held, "rate": self.phase_rate,
         "notice": self.phase_notice, "soak": self.phase_soak}[phase]()

    @staticmethod
    def sampler_for(stack: Stack, interval: float = SAMPLE_SECONDS) -> ProcessSampler:
        roots = {name: process.pid for name, process in stack.processes.items()}
        for group, port in service_ports(stack.environment).items():
            if (pid := listening_pid(port)) is not None:
                roots[group] = pid
        # Last, so that the platform's processes (also our children) keep their own groups:
        # this process and the client processes it starts are the load generator.
        roots[LOAD_GENERATOR] = os.getpid()
        return ProcessSampler(roots, interval)

    def _clients(self, jobs: list[ClientJob], tag: str, sampler: ProcessSampler, *,
                 profile_after: float = 0.0, progress: Callable[[], None] | None = None
                 ) -> list[ClientResult]:
        """Run the jobs, profiling from ``profile_after`` seconds after they start, and calling
        ``progress`` every ``PROGRESS_EVERY_SECONDS`` meanwhile."""
        self.profiler.start_later(jobs[0].start_at - time.time() + profile_after, tag, sampler)
        return run_clients(jobs, progress, every=PROGRESS_EVERY_SECONDS)

    # api: Service B alone.
    def phase_api(self) -> None:
        for workers in self.options.api_workers:
            environment = bench_environment(self.options, f"api-w{workers}", api_workers=workers,
                                            work_dir=self.work_dir)
            logs = self.work_dir / "logs" / f"api-w{workers}"
            with running_platform(environment, logs, only=("stub", "api")) as stack:
                sampler = self.sampler_for(stack)
                sampler.start()
                try:
                    for concurrency in self.options.api_concurrency:
                        self._api_run(stack, sampler, workers, concurrency)
                finally:
                    sampler.stop()

    def _api_request_figures(self, stack: Stack, sampler: ProcessSampler, kind: JobKind, tag: str,
                             concurrency: int, tasks: tuple[tuple[str, str], ...] = ()
                             ) -> tuple[dict[str, Any], list[ClientResult]]:
        before = sampler.snapshot()
        jobs = plan_for(self.options, stack, kind, concurrency, duration=self.options.api_seconds,
                        tasks=tasks)
        results = self._clients(jobs, f"{tag}-{kind}", sampler)
        figures = latency_figures(results)
        figures["cpu_seconds"] = cpu_between(before, sampler.snapshot()).by_group
        figures["api_cpu_ms_per_request"] = cpu_ms_per_request(figures["cpu_seconds"], "api", figures["ok"])
        figures["profiles"] = self.profiler.finish()
        return figures, results

    def _api_run(self, stack: Stack, sampler: ProcessSampler, workers: int, concurrency: int) -> None:
        tag = f"api-w{workers}-c{concurrency}"
        create, created = self._api_request_figures(stack, sampler, JobKind.CREATE, tag, concurrency)
        tasks = tuple(task for result in created for task in result.tasks[:STATUS_READ_TASKS])
        status, _ = self._api_request_figures(stack, sampler, JobKind.STATUS, tag, concurrency, tasks)
        self.results["api"].append({"api_workers": workers, "concurrency": concurrency,
                                    "create": create, "status": status})
        print(f"api  workers={workers} c={concurrency}: create {create['per_second']}/s "
              f"p50 {create['p50_ms']} ms p99 {create['p99_ms']} ms; status {status['per_second']}/s "
              f"p50 {status['p50_ms']} ms p99 {status['p99_ms']} ms", flush=True)

    # held: N tasks at once with the real delay.
    def phase_held(self) -> None:
        for count in self.options.held:
            self._tasks_run("held", f"held-{count}", count=count)

    # rate: R tasks/s for a duration.
    def phase_rate(self) -> None:
        for rate in self.options.rates:
            self._tasks_run("rate", f"rate-{rate:g}", rate=rate)

    # notice: N tasks held, each client told of its end by polling, long-poll, SSE or webhook.
    def phase_notice(self) -> None:
        for count in self.options.notice_held:
            for mode in self.options.notice_modes:
                run = NoticeRun(self.options, self.work_dir, self.profiler, self.sampler_for,
                                NoticeMode(mode), count)
                self.results["notice"].append(run.run())

    # soak: a moderate steady rate for a long time; does anything grow?
    def phase_soak(self) -> None:
        self.results["soak"].append(SoakRun(self.options, self.work_dir, self.sampler_for).run())

    def _task_jobs(self, stack: Stack, phase: str, count: int, rate: float, progress_dir: Path
                   ) -> list[ClientJob]:
        options = self.options
        if phase == "held":
            return plan_for(options, stack, JobKind.SUBMIT, options.submit_concurrency, count=count,
                            progress_dir=str(progress_dir))
        return plan_for(options, stack, JobKind.RATE, max(64, int(rate / 10)), rate=rate,
                        duration=options.rate_seconds, progress_dir=str(progress_dir))

    @staticmethod
    def _submission_progress(tag: str, progress_dir: Path) -> Callable[[], None]:
        started = time.monotonic()

        def report() -> None:
            created = read_progress(progress_dir)["created"]
            print(f"  {tag} +{time.monotonic() - started:.0f}s: created {created}", flush=True)

        return report

    @staticmethod
    def _outcome_progress(tag: str) -> Callable[[Outcomes, int, int], None]:
        started = time.monotonic()

        def report(outcomes: Outcomes, running: int, still_open: int) -> None:
            print(f"  {tag} +{time.monotonic() - started:.0f}s after the last create: "
                  f"completed {outcomes.completed} failed {outcomes.failed}, running {running}, "
                  f"not final {still_open}", flush=True)

        return report

    def _tasks_run(self, phase: str, tag: str, *, count: int = 0, rate: float = 0.0) -> None:
        options = self.options
        if warning := port_range_warning(count or int(rate * options.delay), ephemeral_ports()):
            print(f"{tag}: {warning}", flush=True)
        environment = bench_environment(options, tag, api_workers=options.api_workers[0],
                                        work_dir=self.work_dir)
        with running_platform(environment, self.work_dir / "logs" / tag) as stack:
            sampler = self.sampler_for(stack)
            sampler.start()
            try:
                time.sleep(SETTLE_BEFORE_LOAD_SECONDS)
                baseline_at = time.monotonic()
                before = sampler.snapshot()
                steady = SteadyWindow.of(options, sampler) if phase == "rate" else None
                progress_dir = self.work_dir / "progress" / tag
                progress_dir.mkdir(parents=True, exist_ok=True)
                jobs = self._task_jobs(stack, phase, count, rate, progress_dir)
                # A rate run is profiled in its steady window, whose CPU per task the profile explains.
                results = self._clients(jobs, tag, sampler,
                                        profile_after=0.0 if steady is None else steady.opens_after,
                                        progress=self._submission_progress(tag, progress_dir))
                creates = latency_figures(results)
                task_ids = [task_id for result in results for _, task_id in result.tasks]
                deadline = time.monotonic() + options.delay + options.settle
                outcomes = asyncio.run(follow_outcomes(environment, task_ids, options.delay, deadline,
                                                       progress=self._outcome_progress(tag)))
                after = sampler.snapshot()
            finally:
                sampler.stop()
                profiles = self.profiler.finish()
            figures = overhead_figures(outcomes)
            if steady is not None:
                steady.cancel()
            resources = resource_figures(
                cpu_between(before, after), sampler.rss_between(baseline_at, after.at),
                sampler.peaks(PLATFORM_GROUPS), window_seconds=after.at - before.at, tasks=len(task_ids),
                in_flight=outcomes.peak_running)
        row: dict[str, Any] = {"tag": tag, "delay_seconds": options.delay, "submit": creates,
                               "outcome": figures, "resources": resources, "profiles": profiles}
        if phase == "held":
            row |= {"n": count, "submission_rate": creates["per_second"]}
        else:
            row |= {"rate": rate, "rate_seconds": options.rate_seconds,
                    "achieved_rate": creates["per_second"],
                    "generator_max_lag_ms": ms(max(result.max_lag for result in results)),
                    "passed": rate_passed(creates, figures),
                    "steady": None if steady is None else steady.figures(rate)}
        self.results[phase].append(row)
        print(f"{tag}: submitted {figures['submitted']} at {creates['per_second']}/s "
              f"(create p99 {creates['p99_ms']} ms, errors {creates['errors']}); "
              f"completed {figures['completed']} failed {figures['failed']} lost {figures['lost']}; "
              f"overhead p50 {figures['overhead_p50_ms']} p99 {figures['overhead_p99_ms']} "
              f"max {figures['overhead_max_ms']} ms", flush=True)


def plan_for(options: BenchOptions, stack: Stack, kind: JobKind, concurrency: int, **plan: Any
             ) -> list[ClientJob]:
    """The client jobs of one run against the stack's Service B."""
    return plan_jobs(target(stack), kind, options.clients, concurrency, **plan)
