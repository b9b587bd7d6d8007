"""The ``soak`` phase: a moderate steady rate for a long time, to see whether anything grows.

One platform gets ``--soak-rate`` creates per second (open loop) for ``--soak-minutes``, the
stub answering after ``--soak-delay``, and every task's client polls its status every
``--soak-poll-interval`` until it is final, as a real client does. Every
``--soak-sample-seconds`` the run samples every platform process's RSS and open files (each
Service B, worker pool and stub process, and the redis-server), Redis's ``used_memory`` and
key count, and the ready messages of every queue of the platform's topology (tasks, results,
webhooks, their dead-letter queues, the webhooks' delay queues), and prints a progress line.

The platform gets a redis-server of its own (no persistence, a directory in the run's work
folder), so that Redis's memory is this platform's alone rather than that of whatever else
uses the machine's Redis; ``--platform-env REDIS_URL=...`` uses that one instead. Its records
live ``--soak-task-ttl`` seconds (``TASK_TTL_SECONDS``), so that within the run the keys of
old tasks expire as fast as new ones come and Redis reaches its steady state.

The row: per process start / middle / end and the slope per hour of RSS and open files after
the warm-up (``soak_figures``), the same for Redis and the queues, the tasks created,
completed, failed and lost, the throughput, and the CPU the platform spent per 1,000 tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiormq
import redis
from aiormq.exceptions import ChannelNotFoundEntity

from cpe_devkit.redis_server import RedisServer
from cpe_devkit.stack import Stack
from provisioning.environment import Environment
from provisioning.messaging.topology import topology
from provisioning.settings import BrokerSettings, RedisSettings

from .clients import run_clients
from .figures import MIB, latency_figures, ms
from .jobs import ClientJob, ClientResult, JobKind, plan_jobs
from .launch import bench_environment, running_platform, target
from .options import BenchOptions
from .progress import read_progress
from .sampling import OTHERS, SYSTEM, ProcessSampler, cpu_between, open_files, read_stat
from .soak_figures import (
    REDIS_KEYS,
    REDIS_MIB,
    in_mib,
    leaks,
    process_rows,
    queue_rows,
    series_figures,
    soak_outcome,
    warmup_seconds,
)
from .waiters import REQUESTS

SETTLE_BEFORE_LOAD_SECONDS = 1.0
SAMPLED_GROUPS = ("api", "worker", "stub", "redis")
PROCESS_SAMPLER_SECONDS = 5.0  # CPU ticks and the process trees; the soak's own samples are rarer
CLIENT_CONCURRENCY = 64  # keep-alive connections over all clients: creates and polls share them
# A task whose final status its client has not learnt this long after its create is lost.
NOTICE_MARGIN_SECONDS = 120.0
REDIS_OPTIONS = ("--appendonly", "no")  # Redis's memory is the subject, not its disk
AMQP_SECONDS = 10.0
REDIS_SECONDS = 5.0


def soak_environment(options: BenchOptions, tag: str, work_dir: Path, redis_url: str | None
                     ) -> dict[str, str]:
    """The benchmark's platform with the soak's delay and task TTL, on ``redis_url`` when given."""
    environment = bench_environment(options, tag, api_workers=options.api_workers[0], work_dir=work_dir)
    environment.update({"STUB_DELAY_SECONDS": f"{options.soak_delay:g}",
                        "TASK_TTL_SECONDS": str(options.soak_task_ttl)})
    if redis_url is not None:
        environment["REDIS_URL"] = redis_url
    environment.update(options.platform_overrides)  # --platform-env has the last word
    return environment


@contextmanager
def own_redis(options: BenchOptions, directory: Path) -> Iterator[str | None]:
    """A redis-server of the soak's own (its URL), unless ``--platform-env`` names a Redis (None)."""
    if "REDIS_URL" in options.platform_overrides:
        yield None
        return
    server = RedisServer(directory, options=REDIS_OPTIONS)
    server.start()
    try:
        yield server.url
    finally:
        server.close()


async def queue_depths(amqp_url: str, queues: list[str]) -> dict[str, int]:
    """Ready messages of each queue that exists, by passive declarations on one connection;
    within a bound per queue (and the connection's), so a stalled broker cannot wedge the soak."""
    depths: dict[str, int] = {}
    async with asyncio.timeout(AMQP_SECONDS * (len(queues) + 2)):
        connection = await aiormq.connect(amqp_url)
        try:
            channel = await connection.channel()
            for queue in queues:
                try:
                    declared = await channel.queue_declare(queue, passive=True,
                                                           timeout=AMQP_SECONDS)
                except ChannelNotFoundEntity:  # not declared (yet): the broker closed the channel
                    channel = await connection.channel()
                    continue
                depths[queue] = int(declared.message_count or 0)
        finally:
            await connection.close()
    return depths


def redis_memory(url: str) -> tuple[int, int]:
    """(``used_memory`` in bytes, keys in the database) of a Redis server."""
    client = redis.Redis.from_url(url, socket_timeout=REDIS_SECONDS, socket_connect_timeout=REDIS_SECONDS)
    try:
        return int(client.info("memory")["used_memory"]), int(client.dbsize())
    finally:
        client.close()


def queue_labels(queues: list[str]) -> tuple[str, dict[str, str]]:
    """The dot-separated words every queue's name starts with (the run's own name, ending in
    "."; "" when there is none) and each queue's name without them."""
    words = [queue.split(".") for queue in queues]
    shared: list[str] = []
    for column in zip(*(name[:-1] for name in words), strict=False):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    prefix = "".join(f"{word}." for word in shared) if len(queues) > 1 else ""
    return prefix, {queue: queue.removeprefix(prefix) for queue in queues}


class SoakSamples:
    """The series of one soak run: (seconds since the load started, value) per process,
    Redis figure and queue, for the samples taken until the load's end (``seconds``): the
    few while the last tasks' clients finish are printed, not kept."""

    def __init__(self, environment: Mapping[str, str], sampler: ProcessSampler, load_starts_at: float,
                 seconds: float, progress_dir: Path) -> None:
        self.sampler = sampler
        self.load_starts_at = load_starts_at  # wall clock
        self.seconds = seconds
        self.progress_dir = progress_dir
        env = Environment(environment)
        self.redis_url = RedisSettings.from_env(env).url
        broker = BrokerSettings.from_env(env)
        self.amqp_url = broker.url
        self.queues = [queue for queue, _ in topology(broker)]
        self.queue_prefix, self.queue_labels = queue_labels(self.queues)
        self.rss: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        self.files: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        self.redis_used: list[tuple[float, float]] = []
        self.redis_keys: list[tuple[float, float]] = []
        self.depths: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        self.problems: list[str] = []  # samples that could not be read, and why
        self.taken = 0  # samples kept

    def take(self) -> None:
        """One sample of everything, and its progress line."""
        at = time.time() - self.load_starts_at
        if at > self.seconds:
            self._print(at)
            return
        self.taken += 1
        for pid, (_, role) in sorted(self.sampler.members_of(SAMPLED_GROUPS).items(), key=lambda m: m[1]):
            if (stat := read_stat(pid)) is not None:
                name = f"{role} (pid {pid})"
                self.rss[name].append((at, float(stat[2])))
                self.files[name].append((at, float(open_files(pid))))
        try:
            used, keys = redis_memory(self.redis_url)
            self.redis_used.append((at, float(used)))
            self.redis_keys.append((at, float(keys)))
        except redis.RedisError as error:
            self.problems.append(f"+{at:.0f}s Redis: {error}")
        try:
            for queue, depth in asyncio.run(queue_depths(self.amqp_url, self.queues)).items():
                self.depths[self.queue_labels[queue]].append((at, float(depth)))
        except (aiormq.exceptions.AMQPError, OSError, TimeoutError) as error:
            self.problems.append(f"+{at:.0f}s RabbitMQ: {error!r}")
        self._print(at)

    @staticmethod
    def _latest(group: str, series: Mapping[str, list[tuple[float, float]]]) -> float:
        """The last value of every process of ``group`` (``api (pid 7)``, ``api/child1.0 ...``), summed."""
        return sum(points[-1][1] for name, points in series.items()
                   if name.split(" ")[0].split("/")[0] == group)

    def _print(self, at: float) -> None:
        counts = read_progress(self.progress_dir)
        groups = [group for group in SAMPLED_GROUPS if any(n.startswith(group) for n in self.rss)]
        memory = ", ".join(f"{group} {self._latest(group, self.rss) / MIB:.1f}" for group in groups)
        files = ", ".join(f"{group} {self._latest(group, self.files):.0f}" for group in groups)
        redis_line = (f"Redis {self.redis_used[-1][1] / MIB:.1f} MiB {self.redis_keys[-1][1]:.0f} keys"
                      if self.redis_used else "Redis ?")
        waiting = sum(points[-1][1] for points in self.depths.values())
        print(f"  soak {at:+.0f}s: created {counts['created']} final {counts['noticed']} "
              f"(poll errors {counts['wait_errors']}); RSS MiB {memory}; open files {files}; {redis_line}; "
              f"ready messages {waiting:.0f}", flush=True)


class SoakRun:
    """The soak: its Redis, its platform, the clients, the samples, the row."""

    def __init__(self, options: BenchOptions, work_dir: Path,
                 sampler_for: Callable[[Stack, float], ProcessSampler]) -> None:
        self.options, self.work_dir, self.sampler_for = options, work_dir, sampler_for
        self.tag = f"soak-{options.soak_rate:g}"
        self.progress_dir = work_dir / "progress" / self.tag
        self.progress_dir.mkdir(parents=True, exist_ok=True)

    @property
    def seconds(self) -> float:
        return self.options.soak_minutes * 60

    def run(self) -> dict[str, Any]:
        options = self.options
        with own_redis(options, self.work_dir / "redis" / self.tag) as redis_url:
            environment = soak_environment(options, self.tag, self.work_dir, redis_url)
            with running_platform(environment, self.work_dir / "logs" / self.tag) as stack:
                sampler = self.sampler_for(stack, PROCESS_SAMPLER_SECONDS)
                sampler.start()
                try:
                    time.sleep(SETTLE_BEFORE_LOAD_SECONDS)
                    jobs = self._jobs(stack)
                    samples = SoakSamples(environment, sampler, jobs[0].start_at, self.seconds,
                                          self.progress_dir)
                    samples.take()
                    before = sampler.snapshot()
                    results = run_clients(jobs, samples.take, every=options.soak_sample_seconds)
                    after = sampler.snapshot()
                finally:
                    sampler.stop()
        return self._row(results, samples, cpu_between(before, after).by_group, after.at - before.at,
                         own=redis_url is not None)

    def _jobs(self, stack: Stack) -> list[ClientJob]:
        options = self.options
        return plan_jobs(target(stack), JobKind.SOAK, options.clients, CLIENT_CONCURRENCY,
                         rate=options.soak_rate, duration=self.seconds,
                         wait_seconds=options.soak_poll_interval,
                         notice_seconds=options.soak_delay + NOTICE_MARGIN_SECONDS,
                         progress_dir=str(self.progress_dir))

    def _row(self, results: list[ClientResult], samples: SoakSamples, cpu: dict[str, float], window: float,
             *, own: bool) -> dict[str, Any]:
        options = self.options
        # The records need TTL + delay (+ a poll) to start expiring: only then is Redis steady.
        warmup = warmup_seconds(self.seconds, steady_after=options.soak_task_ttl + options.soak_delay
                                + options.soak_poll_interval)
        created = [(task_id, at) for result in results for task_id, at in result.created_at.items()]
        notices = {task_id: notice for result in results for task_id, notice in result.notices.items()}
        outcome = soak_outcome(created, notices, self.seconds)
        poll_errors: dict[str, int] = {}
        for result in results:
            for name, count in result.wait_errors.items():
                poll_errors[name] = poll_errors.get(name, 0) + count
        polls = poll_errors.pop(REQUESTS, 0)
        per_thousand = 1000 / len(created) if created else 0.0
        row: dict[str, Any] = {
            "tag": self.tag, "rate": options.soak_rate, "minutes": options.soak_minutes,
            "delay_seconds": options.soak_delay, "poll_interval_seconds": options.soak_poll_interval,
            "sample_seconds": options.soak_sample_seconds, "task_ttl_seconds": options.soak_task_ttl,
            "warmup_seconds": round(warmup, 1), "samples": samples.taken,
            "own_redis": own,
            "submit": latency_figures(results),
            "generator_max_lag_ms": ms(max((result.max_lag for result in results), default=0.0)),
            "outcome": outcome,
            "polls_per_task": round(polls / len(created), 1) if created else None,
            "poll_errors": poll_errors,
            "processes": process_rows(samples.rss, samples.files, warmup),
            "redis_used_memory_mib": series_figures(in_mib(samples.redis_used), warmup, REDIS_MIB),
            "redis_keys": series_figures(samples.redis_keys, warmup, REDIS_KEYS),
            "queues": queue_rows(samples.depths, warmup), "queue_prefix": samples.queue_prefix,
            "cpu_seconds_per_1000_tasks": {group: round(seconds * per_thousand, 2)
                                           for group, seconds in sorted(cpu.items())
                                           if group not in (SYSTEM, OTHERS)},
            "others_cpu_seconds": round(cpu.get(OTHERS, 0.0), 1), "window_seconds": round(window, 1),
            "sample_problems": samples.problems,
            "series": {"rss_bytes": dict(samples.rss), "open_files": dict(samples.files),
                       "redis_used_memory_bytes": samples.redis_used, "redis_keys": samples.redis_keys,
                       "queue_ready_messages": dict(samples.depths)},
        }
        row["leaks"] = leaks(row)
        print(f"{self.tag}: created {outcome['created']} at {outcome['created_per_second']}/s, completed "
              f"{outcome['completed']} failed {outcome['failed']} lost {outcome['lost']}; "
              f"growing: {', '.join(row['leaks']) or 'nothing'}", flush=True)
        return row
