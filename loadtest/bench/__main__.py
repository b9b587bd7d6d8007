"""Benchmark of the platform on this machine: it reports figures, it asserts nothing.

``task bench`` (or ``.venv/bin/python loadtest/bench.py``) starts the platform locally through
``provisioning.devstack.Stack`` — the stub, Service B and the worker pool as child processes, with
isolated Redis keys and queue names that are removed afterwards — and drives it from several
aiohttp client processes (HTTPS, keep-alive, certificates verified against the project's CA).
Load generator, platform, Redis and RabbitMQ all share the machine, so the figures are for the
whole box, and the CPU the benchmark itself and other processes used is recorded beside them.

Phases (``--phases``, default all):

    api    create-task and status-read throughput and latency at fixed client concurrency,
           Service B and the stub only (tasks wait in the queue and are deleted afterwards)
    held   N tasks with the stub's real delay submitted as fast as the API takes them, for each N
           in ``--held``: submission rate; completed / failed / lost; completion overhead
           (finished_at - created_at - delay, from the Redis task records) p50/p99/max
    rate   R tasks/s for ``--rate-seconds`` (open loop), for each R in ``--rates``: nothing
           lost, create p99 < 100 ms and overhead p99 < 1 s is a pass
Resources, measured during held and rate: CPU seconds and peak RSS of every process of the
platform (and of Redis, RabbitMQ and the clients) per 1,000 tasks, and memory per in-flight
task of the worker pool and the stub.

Results: a table on stdout, one ``BENCH_JSON {...}`` line, ``reports/bench-<time>/`` (JSON,
Markdown, logs) and, unless ``--quick``, the generated part of ``loadtest/RESULTS.md``.

    task bench -- --quick                                   # about a minute, for development
    task bench -- --held 1000,10000 --rates 100 --rate-seconds 120
    task bench                                              # the full run (about 20 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform as host_platform
import random
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO / "loadtest" / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

BODY = json.dumps({
    "timeoutInSeconds": 14,
    "parameters": {"username": "admin", "password": "bench-secret", "vlan": 534, "interfaces": [1, 2, 3, 4]},
}).encode()
HEADERS = {"Content-Type": "application/json"}


# --- options --------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute variant: 2 s delay, small N, short phases (overrides the defaults "
                             "below unless they are given explicitly)")
    parser.add_argument("--phases", default=env("BENCH_PHASES", "api,held,rate"),
                        help="comma-separated: api, held, rate (BENCH_PHASES)")
    parser.add_argument("--delay", type=float, default=None,
                        help="the stub's delay in seconds for held and rate (BENCH_DELAY, 60)")
    parser.add_argument("--held", default=None, help="N values for held (BENCH_HELD, 1000,10000,20000)")
    parser.add_argument("--rates", default=None, help="R values in tasks/s for rate (BENCH_RATES, 300)")
    parser.add_argument("--rate-seconds", type=float, default=None,
                        help="duration of each rate (BENCH_RATE_SECONDS, 300)")
    parser.add_argument("--api-seconds", type=float, default=None,
                        help="duration of each api run (BENCH_API_SECONDS, 15)")
    parser.add_argument("--api-concurrency", default=env("BENCH_API_CONCURRENCY", "64"),
                        help="client concurrency of the api phase, comma-separated for several")
    parser.add_argument("--api-workers", default=env("BENCH_API_WORKERS", env("API_WORKERS", "1")),
                        help="API_WORKERS values, comma-separated: each is a separate api run; "
                             "held and rate use the first")
    parser.add_argument("--stub-workers", type=int, default=int(env("BENCH_STUB_WORKERS", "2")),
                        help="STUB_WORKERS (each holds about N/STUB_WORKERS connections)")
    parser.add_argument("--worker-processes", type=int, default=int(env("BENCH_WORKER_PROCESSES", "2")),
                        help="WORKER_PROCESSES (each holds about N/WORKER_PROCESSES connections)")
    parser.add_argument("--worker-prefetch", type=int, default=int(env("BENCH_WORKER_PREFETCH", "0")),
                        help="WORKER_PREFETCH; 0 = enough for the largest N or R x delay in flight")
    parser.add_argument("--clients", type=int, default=int(env("BENCH_CLIENTS", "2")),
                        help="client processes")
    parser.add_argument("--submit-concurrency", type=int, default=int(env("BENCH_SUBMIT_CONCURRENCY", "128")),
                        help="requests in flight while submitting held tasks, over all clients")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds after the expected end a task may still finish before it counts "
                             "as lost (BENCH_SETTLE, 120)")
    parser.add_argument("--profile", type=float, default=float(env("BENCH_PROFILE", "0")), metavar="SECONDS",
                        help="record py-spy profiles (pip install py-spy) of every platform process for "
                             "this many seconds from the start of each run's load; summaries go into the "
                             "report")
    parser.add_argument("--platform-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the platform, e.g. LOG_LEVEL=WARNING (repeatable)")
    parser.add_argument("--results", default=env("BENCH_RESULTS"),
                        help="Markdown file whose generated part is replaced "
                             f"(default: {RESULTS_FILE.relative_to(REPO)}, none for --quick)")
    parser.add_argument("--reports", default=env("BENCH_REPORTS", "reports"), help="folder for bench-<time>/")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "delay": ("BENCH_DELAY", 2.0 if quick else 60.0, float),
        "held": ("BENCH_HELD", "200,1000" if quick else "1000,10000,20000", str),
        "rates": ("BENCH_RATES", "50" if quick else "300", str),
        "rate_seconds": ("BENCH_RATE_SECONDS", 10.0 if quick else 300.0, float),
        "api_seconds": ("BENCH_API_SECONDS", 4.0 if quick else 15.0, float),
        "settle": ("BENCH_SETTLE", 15.0 if quick else 120.0, float),
    }
    for name, (variable, default, kind) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, kind(env(variable, str(default))))
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - {"api", "held", "rate"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    args.held = _ints(args.held)
    args.rates = _floats(args.rates)
    args.api_concurrency = _ints(args.api_concurrency)
    args.api_workers = _ints(args.api_workers)
    return args


# --- the machine and the versions -----------------------------------------------------------------


def raise_open_files_limit() -> tuple[int, int]:
    """Soft limit up to the hard one; the platform's processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def machine_facts() -> dict[str, Any]:
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu_model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {"python": host_platform.python_version()}
    packages = ("sanic", "aiohttp", "aiormq", "redis", "hiredis", "uvloop", "locust", "opentelemetry-sdk")
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": host_platform.release(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


async def service_versions(redis_url: str, amqp_url: str) -> dict[str, str]:
    import aiormq
    import redis.asyncio as aioredis

    found: dict[str, str] = {}
    client = aioredis.Redis.from_url(redis_url)
    try:
        found["redis-server"] = str((await client.info("server")).get("redis_version"))
    finally:
        await client.aclose()
    connection = await aiormq.connect(amqp_url)
    try:
        version = connection.server_properties.get("version", b"")
        found["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()
    return found


# --- processes: CPU and memory from /proc -----------------------------------------------------------


def _read_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, CPU ticks user+system, RSS bytes), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_SIZE


def _peak_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _system_busy_ticks() -> int:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def listening_pid(port: int) -> int | None:
    """The process that listens on a local TCP port (Redis, RabbitMQ), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(entry)
        except OSError:
            continue
    return None


class ProcessSampler:
    """Samples named process trees every ``interval``: CPU ticks, RSS, open files."""

    def __init__(self, roots: dict[str, int], interval: float = 0.5) -> None:
        self.roots = dict(roots)
        self.interval = interval
        self.lock = threading.Lock()
        self.members: dict[int, tuple[str, str]] = {}  # pid -> (group, role)
        self.ticks: dict[int, int] = {}  # last seen
        self.first_ticks: dict[int, int] = {}
        self.rss_series: list[tuple[float, dict[str, int]]] = []
        self.peak_rss: dict[int, int] = {}
        self.peak_files: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._samples = 0

    def add_root(self, group: str, pid: int) -> None:
        with self.lock:
            self.roots[f"{group}#{pid}"] = pid

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _tree(self) -> dict[int, tuple[str, str]]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _read_stat(int(entry))
                if stat is not None:
                    parents[int(entry)] = stat[0]
        members: dict[int, tuple[str, str]] = {}
        for key, root in self.roots.items():
            group = key.split("#", 1)[0]
            members[root] = (group, group)
            frontier, depth = [root], 0
            while frontier and depth < 4:
                depth += 1
                children = [pid for pid, parent in parents.items() if parent in frontier]
                for index, child in enumerate(children):
                    members.setdefault(child, (group, f"{group}/child{depth}.{index}"))
                frontier = children
        return members

    def sample(self) -> None:
        members = self._tree()
        files_now = self._samples % 4 == 0
        self._samples += 1
        rss_by_group: Counter[str] = Counter()
        with self.lock:
            for pid, (group, role) in members.items():
                stat = _read_stat(pid)
                if stat is None:
                    continue
                self.members.setdefault(pid, (group, role))
                self.first_ticks.setdefault(pid, stat[1])
                self.ticks[pid] = stat[1]
                rss_by_group[group] += stat[2]
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), stat[2], _peak_rss(pid))
                if files_now:
                    self.peak_files[pid] = max(self.peak_files.get(pid, 0), _open_files(pid))
            self.rss_series.append((time.monotonic(), dict(rss_by_group)))

    def snapshot(self) -> dict[str, Any]:
        self.sample()
        with self.lock:
            return {"at": time.monotonic(), "ticks": dict(self.ticks), "system": _system_busy_ticks(),
                    "members": dict(self.members)}

    def cpu_between(
        self, start: dict[str, Any], end: dict[str, Any]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """CPU seconds per group and per process role between two snapshots."""
        by_group: Counter[str] = Counter()
        by_role: Counter[str] = Counter()
        for pid, ticks in end["ticks"].items():
            group, role = end["members"].get(pid, ("?", "?"))
            before = start["ticks"].get(pid, 0)  # not there yet: born within the window
            seconds = max(ticks - before, 0) / CLOCK_TICKS
            by_group[group] += seconds
            by_role[role] += seconds
        by_group["all (system)"] = (end["system"] - start["system"]) / CLOCK_TICKS
        ours = sum(v for k, v in by_group.items() if k != "all (system)")
        by_group["others (not this benchmark)"] = max(by_group["all (system)"] - ours, 0.0)
        return dict(by_group), dict(by_role)

    def rss_between(self, start: float, end: float) -> dict[str, tuple[int, int]]:
        """(first, peak) summed RSS per group within a time window."""
        window = [(at, rss) for at, rss in self.rss_series if start <= at <= end]
        result: dict[str, tuple[int, int]] = {}
        if not window:
            return result
        for group in window[0][1]:
            values = [rss.get(group, 0) for _, rss in window]
            result[group] = (values[0], max(values))
        return result

    def peaks(self, groups: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = set(groups)
        with self.lock:
            return {
                f"{role} (pid {pid})": {"peak_rss_mib": round(self.peak_rss.get(pid, 0) / 2**20, 1),
                                         "peak_open_files": self.peak_files.get(pid, 0)}
                for pid, (group, role) in sorted(self.members.items(), key=lambda item: item[1])
                if group in wanted
            }


# --- profiles -----------------------------------------------------------------------------------------

def frame_package(frame: str) -> str:
    """The package of a py-spy frame ``function (path:line)``, recorded with --full-filenames."""
    path = frame.rpartition(" (")[2].removesuffix(")").rpartition(":")[0]
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    roots = (("/platform/provisioning/", "provisioning"), ("/stub/equipment_stub/", "equipment_stub"))
    for root, name in roots:
        if root in path:
            module = path.split(root, 1)[1].split("/", 1)[0].removesuffix(".py")
            return f"{name}.{module}"
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
        return f"stdlib {module}"
    if path.startswith("<"):
        return "python"
    return "sanic (generated code)"  # Sanic compiles parts of its HTTP/1 handling at start


class Profiler:
    """py-spy (if installed) on every platform process for a while; raw stacks and summaries."""

    def __init__(self, out_dir: Path, seconds: float) -> None:
        self.out_dir = out_dir
        self.seconds = seconds
        beside_python = Path(sys.executable).parent / "py-spy"
        self.pyspy = shutil.which("py-spy") or (str(beside_python) if beside_python.exists() else None)
        self.running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        self.timer: threading.Timer | None = None

    @property
    def enabled(self) -> bool:
        return self.seconds > 0 and self.pyspy is not None

    def start_later(self, delay: float, tag: str, sampler: ProcessSampler) -> None:
        """Start when the clients start (they open their connections first)."""
        if self.enabled:
            self.timer = threading.Timer(max(delay, 0.0), self.start, args=(tag, sampler))
            self.timer.start()

    def start(self, tag: str, sampler: ProcessSampler) -> None:
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with sampler.lock:
            members = dict(sampler.members)
        for pid, (group, role) in members.items():
            if group not in ("api", "worker", "stub") or _read_stat(pid) is None:
                continue
            output = self.out_dir / f"{tag}-{role.replace('/', '_')}-{pid}.txt"
            process = subprocess.Popen(
                [str(self.pyspy), "record", "-p", str(pid), "-d", str(int(self.seconds)), "-r", "100",
                 "-f", "raw", "--full-filenames", "-o", str(output), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running.append((f"{role} (pid {pid})", output, process))

    def finish(self) -> dict[str, Any]:
        if self.timer is not None:
            self.timer.join()
            self.timer = None
        summaries: dict[str, Any] = {}
        for name, output, process in self.running:
            try:
                process.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if output.exists():
                summary = summarize_profile(output)
                if summary["samples"] >= 20:
                    summaries[name] = summary
        self.running.clear()
        return summaries


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Self time by package (the sampled frame's own code), and the project's functions by
    inclusive time (everything they called, until a coroutine boundary cuts py-spy's stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frame_package(frames[-1])] += samples
        for frame in set(frames):
            if "/platform/provisioning/" in frame or "/stub/equipment_stub/" in frame:
                function, _, where = frame.partition(" (")
                inclusive[f"{function} ({where.rsplit('/', 1)[-1]}"] += samples
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self_percent_by_package": {name: share(n) for name, n in own.most_common(top)},
        "inclusive_percent_project_functions": {name: share(n) for name, n in inclusive.most_common(top)
                                                if share(n) >= 1.0},
    }


# --- the platform -------------------------------------------------------------------------------------


def free_port_block(size: int = 1) -> int:
    """A port p such that p .. p+size-1 are free now (metrics ports are base + process index)."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        try:
            probes = []
            for port in range(base, base + size):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free port block")


def platform_environment(args: argparse.Namespace, tag: str, *, delay: float, api_workers: int,
                         prefetch: int, workdir: Path) -> dict[str, str]:
    unique = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    stub_port = free_port_block()
    environment = {
        **os.environ,
        "REDIS_KEY_PREFIX": f"{unique}:",
        "TASKS_QUEUE": f"{unique}.tasks",
        "RESULTS_QUEUE": f"{unique}.results",
        "API_PORT": str(free_port_block()),
        "API_WORKERS": str(api_workers),
        "STUB_PORT": str(stub_port),
        "SERVICE_A_URL": f"https://127.0.0.1:{stub_port}",
        "STUB_WORKERS": str(args.stub_workers),
        "STUB_DELAY_SECONDS": str(delay),
        "STUB_BEHAVIOUR_FILE": str(workdir / f"stub-behaviour-{unique}.json"),
        "WORKER_PROCESSES": str(args.worker_processes),
        "WORKER_PREFETCH": str(prefetch),
        # Each Sanic process serves its metrics on base + its index (tests/e2e/test_several_processes).
        "STUB_METRICS_PORT": str(free_port_block(args.stub_workers + 1)),
        "API_METRICS_PORT": str(free_port_block(api_workers + 1)),
        "WORKER_METRICS_PORT": str(free_port_block(args.worker_processes + 1)),
    }
    environment.setdefault("CERT_DIR", str(REPO / "certs"))
    for assignment in args.platform_env:
        name, _, value = assignment.partition("=")
        environment[name] = value
    return environment


@contextmanager
def running_platform(environment: dict[str, str], log_dir: Path, only: tuple[str, ...] | None = None
                     ) -> Iterator[Any]:
    """The platform for one phase; afterwards the keys and queues of its run are deleted."""
    from provisioning.devstack import running_stack
    from provisioning.run_data import delete_run_data

    try:
        with running_stack(environment, log_dir, only=only, ready_timeout=90) as stack:
            yield stack
    finally:
        asyncio.run(delete_run_data(environment))


# --- client processes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientJob:
    kind: str  # "create" | "status" (closed loop for duration), "submit" (count), "rate" (open loop)
    base_url: str
    ca_file: str
    concurrency: int
    start_at: float  # wall clock, so that every client starts together
    duration: float = 0.0
    count: int = 0
    rate: float = 0.0
    tasks: tuple[tuple[str, str], ...] = ()
    tag: str = "c0"
    token: str = ""  # Service B's bearer token, when API_TOKENS is set


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests
    statuses: Counter[str] = field(default_factory=Counter)
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (equipment id, task id) created
    first: float = 0.0
    last: float = 0.0
    max_lag: float = 0.0  # rate: how late the generator started a request, at worst
    cpu_seconds: float = 0.0


def run_client(job: ClientJob) -> ClientResult:
    """Entry point of a client process."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_client(job))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_client(job))


async def _client(job: ClientJob) -> ClientResult:
    import aiohttp

    context = ssl.create_default_context(cafile=job.ca_file)
    connector = aiohttp.TCPConnector(ssl=context, limit=job.concurrency, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=60)
    result = ClientResult()
    headers = {"Authorization": f"Bearer {job.token}"} if job.token else {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        # Open the keep-alive connections before the clock starts.
        async def warm() -> None:
            async with session.get(f"{job.base_url}/health") as response:
                await response.read()
        await asyncio.gather(*(warm() for _ in range(job.concurrency)), return_exceptions=True)
        await asyncio.sleep(max(job.start_at - time.time(), 0))
        started_cpu = time.process_time()
        if job.kind in ("create", "status"):
            await _closed_loop(session, job, result)
        elif job.kind == "submit":
            await _submit(session, job, result)
        elif job.kind == "rate":
            await _open_loop(session, job, result)
        else:
            raise ValueError(job.kind)
        result.cpu_seconds = time.process_time() - started_cpu
    return result


async def _create(session: Any, job: ClientJob, index: int, result: ClientResult) -> None:
    equipment_id = f"BENCH{job.tag}X{index:09d}"
    started = time.perf_counter()
    try:
        async with session.post(f"{job.base_url}/api/v1/equipment/cpe/{equipment_id}", data=BODY,
                                headers=HEADERS) as response:
            body = await response.read()
            status = response.status
    except Exception as error:  # a client-side failure is a figure, not a crash
        result.statuses[type(error).__name__] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.statuses[str(status)] += 1
    if status == 200:
        result.tasks.append((equipment_id, json.loads(body)["taskId"]))


async def _status(session: Any, job: ClientJob, rng: random.Random, result: ClientResult) -> None:
    equipment_id, task_id = rng.choice(job.tasks)
    started = time.perf_counter()
    try:
        url = f"{job.base_url}/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"
        async with session.get(url) as response:
            await response.read()
            status = response.status
    except Exception as error:
        result.statuses[type(error).__name__] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.statuses[str(status)] += 1


async def _closed_loop(session: Any, job: ClientJob, result: ClientResult) -> None:
    end = time.monotonic() + job.duration
    counter = iter(range(10**9))
    rng = random.Random(job.tag)

    async def loop() -> None:
        while time.monotonic() < end:
            if job.kind == "create":
                await _create(session, job, next(counter), result)
            else:
                await _status(session, job, rng, result)

    result.first = time.time()
    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    result.last = time.time()


async def _submit(session: Any, job: ClientJob, result: ClientResult) -> None:
    counter = iter(range(job.count))

    async def loop() -> None:
        for index in counter:
            await _create(session, job, index, result)

    result.first = time.time()
    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    result.last = time.time()


async def _open_loop(session: Any, job: ClientJob, result: ClientResult) -> None:
    """Start request i at i / rate seconds, whatever the earlier ones are doing."""
    total = int(job.rate * job.duration)
    pending: set[asyncio.Task[None]] = set()
    origin = time.monotonic()
    result.first = time.time()
    for index in range(total):
        due = origin + index / job.rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.max_lag = max(result.max_lag, -wait)
        request = asyncio.create_task(_create(session, job, index, result))
        pending.add(request)
        request.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=120)
    result.last = time.time()


def run_clients(jobs: list[ClientJob]) -> list[ClientResult]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(jobs)) as pool:
        return pool.map(run_client, jobs)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


# --- figures --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def ms(value: float) -> float:
    return round(value * 1000, 1)


@dataclass
class Outcomes:
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    lost_statuses: Counter[str] = field(default_factory=Counter)
    overheads: list[float] = field(default_factory=list)
    peak_running: int = 0
    peak_running_at: float = 0.0
    done_at: float = 0.0


async def follow_outcomes(environment: dict[str, str], tasks: list[str], delay: float, deadline: float,
                          interval: float = 2.0) -> Outcomes:
    """Read the task records until every task is final or the deadline (monotonic) passes."""
    import redis.asyncio as aioredis

    from provisioning import names

    prefix = environment["REDIS_KEY_PREFIX"] + names.TASK_KEY
    outcomes = Outcomes(submitted=len(tasks))
    open_tasks = list(tasks)
    client = aioredis.Redis.from_url(environment.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                                     decode_responses=True)
    last: dict[str, list[str | None]] = {}
    try:
        while open_tasks:
            still_open: list[str] = []
            running = 0
            for start in range(0, len(open_tasks), 5000):
                chunk = open_tasks[start:start + 5000]
                async with client.pipeline(transaction=False) as pipe:
                    for task_id in chunk:
                        pipe.hmget(prefix + task_id, "status", "created_at", "finished_at")
                    rows = await pipe.execute()
                for task_id, (status, created, finished) in zip(chunk, rows, strict=True):
                    if status in ("completed", "failed"):
                        if status == "completed":
                            outcomes.completed += 1
                        else:
                            outcomes.failed += 1
                        if created and finished:
                            outcomes.overheads.append(float(finished) - float(created) - delay)
                    else:
                        running += status == "running"
                        still_open.append(task_id)
                        last[task_id] = [status, created, finished]
            if running > outcomes.peak_running:
                outcomes.peak_running, outcomes.peak_running_at = running, time.monotonic()
            open_tasks = still_open
            if not open_tasks or time.monotonic() > deadline:
                break
            await asyncio.sleep(interval)
    finally:
        await client.aclose()
    outcomes.lost = len(open_tasks)
    outcomes.lost_statuses = Counter(str(last.get(task_id, [None])[0]) for task_id in open_tasks)
    outcomes.done_at = time.monotonic()
    return outcomes


def latency_figures(results: list[ClientResult]) -> dict[str, Any]:
    latencies = [value for result in results for value in result.latencies]
    statuses: Counter[str] = Counter()
    for result in results:
        statuses.update(result.statuses)
    first = min(result.first for result in results)
    last = max(result.last for result in results)
    elapsed = max(last - first, 1e-9)
    ok = statuses.get("200", 0)
    return {
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": {k: v for k, v in statuses.items() if k != "200"},
        "seconds": round(elapsed, 2),
        "per_second": round(ok / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies)) if latencies else None,
        "client_cpu_seconds": round(sum(result.cpu_seconds for result in results), 1),
    }


def cpu_ms_per_request(figures: dict[str, Any], group: str) -> float:
    return round(1000 * figures["cpu_seconds"].get(group, 0.0) / max(figures["ok"], 1), 2)


def resource_figures(sampler: ProcessSampler, start: dict[str, Any], end: dict[str, Any], tasks: int,
                     baseline_at: float, in_flight: int) -> dict[str, Any]:
    by_group, by_role = sampler.cpu_between(start, end)
    per_thousand = 1000 / tasks if tasks else float("nan")
    rss = sampler.rss_between(baseline_at, end["at"])
    memory: dict[str, Any] = {}
    for group in ("worker", "stub", "api"):
        if group in rss:
            first, peak = rss[group]
            memory[group] = {
                "baseline_mib": round(first / 2**20, 1),
                "peak_mib": round(peak / 2**20, 1),
                "kib_per_in_flight_task": round((peak - first) / 1024 / in_flight, 2) if in_flight else None,
            }
    return {
        "window_seconds": round(end["at"] - start["at"], 1),
        "cpu_seconds": {group: round(value, 1) for group, value in sorted(by_group.items())},
        "cpu_seconds_per_1000_tasks": {group: round(value * per_thousand, 2)
                                       for group, value in sorted(by_group.items())
                                       if not group.startswith(("all", "others"))},
        "cpu_seconds_per_process": {role: round(value, 1) for role, value in sorted(by_role.items())
                                    if value >= 0.05},
        "memory": memory,
        "processes": sampler.peaks(("api", "worker", "stub")),
    }


def overhead_figures(outcomes: Outcomes) -> dict[str, Any]:
    values = outcomes.overheads
    return {
        "submitted": outcomes.submitted,
        "completed": outcomes.completed,
        "failed": outcomes.failed,
        "lost": outcomes.lost,
        "lost_statuses": dict(outcomes.lost_statuses),
        "overhead_p50_ms": ms(percentile(values, 0.50)) if values else None,
        "overhead_p99_ms": ms(percentile(values, 0.99)) if values else None,
        "overhead_max_ms": ms(max(values)) if values else None,
        "peak_running": outcomes.peak_running,
    }


# --- phases -----------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: dict[str, Any] = {"api": [], "held": [], "rate": []}
        self.profiler = Profiler(workdir / "profiles", args.profile)

    def prefetch(self) -> int:
        if self.args.worker_prefetch:
            return int(self.args.worker_prefetch)
        wanted = max([*self.args.held, *(rate * (self.args.delay + 5) for rate in self.args.rates), 2000])
        return math.ceil(wanted / self.args.worker_processes * 1.1)

    @staticmethod
    def token(stack: Any) -> str:
        tokens = [t.strip() for t in stack.environment.get("API_TOKENS", "").split(",") if t.strip()]
        return tokens[0] if tokens else ""

    def sampler_for(self, stack: Any) -> ProcessSampler:
        roots = {name: process.pid for name, process in stack.processes.items()}
        for group, port in (("redis", 6379), ("rabbitmq", 5672)):
            pid = listening_pid(port)
            if pid is not None:
                roots[group] = pid
        # Last, so that the platform's processes (also our children) keep their own groups:
        # this process and the client processes it starts are the load generator.
        roots["bench"] = os.getpid()
        return ProcessSampler(roots)

    def jobs(self, stack: Any, kind: str, concurrency: int, **kwargs: Any) -> list[ClientJob]:
        clients = self.args.clients
        start_at = time.time() + 2.0 + concurrency / 200
        shares = split(concurrency, clients)
        counts = split(kwargs.pop("count", 0), clients)
        return [
            ClientJob(kind=kind, base_url=stack.api_url, ca_file=str(stack.ca_file),
                      concurrency=max(shares[i], 1), start_at=start_at, count=counts[i],
                      tag=f"{uuid.uuid4().hex[:6]}c{i}", token=self.token(stack),
                      rate=kwargs.get("rate", 0.0) / clients, duration=kwargs.get("duration", 0.0),
                      tasks=kwargs.get("tasks", ()))
            for i in range(clients)
        ]

    # api: Service B alone.
    def phase_api(self) -> None:
        for workers in self.args.api_workers:
            environment = platform_environment(self.args, "api", delay=self.args.delay, api_workers=workers,
                                               prefetch=self.prefetch(), workdir=self.workdir)
            logs = self.workdir / "logs" / f"api-w{workers}"
            with running_platform(environment, logs, only=("stub", "api")) as stack:
                sampler = self.sampler_for(stack)
                sampler.start()
                try:
                    for concurrency in self.args.api_concurrency:
                        self._api_run(stack, sampler, workers, concurrency)
                finally:
                    sampler.stop()

    def _api_run(self, stack: Any, sampler: ProcessSampler, workers: int, concurrency: int) -> None:
        tag = f"api-w{workers}-c{concurrency}"
        before = sampler.snapshot()
        jobs = self.jobs(stack, "create", concurrency, duration=self.args.api_seconds)
        self.profiler.start_later(jobs[0].start_at - time.time(), f"{tag}-create", sampler)
        created = run_clients(jobs)
        middle = sampler.snapshot()
        create = latency_figures(created)
        create["cpu_seconds"], _ = sampler.cpu_between(before, middle)
        create["api_cpu_ms_per_request"] = cpu_ms_per_request(create, "api")
        create["profiles"] = self.profiler.finish()
        tasks = tuple(task for result in created for task in result.tasks[:2000])
        middle = sampler.snapshot()
        jobs = self.jobs(stack, "status", concurrency, duration=self.args.api_seconds, tasks=tasks)
        self.profiler.start_later(jobs[0].start_at - time.time(), f"{tag}-status", sampler)
        reads = run_clients(jobs)
        after = sampler.snapshot()
        status = latency_figures(reads)
        status["cpu_seconds"], _ = sampler.cpu_between(middle, after)
        status["api_cpu_ms_per_request"] = cpu_ms_per_request(status, "api")
        status["profiles"] = self.profiler.finish()
        row = {"api_workers": workers, "concurrency": concurrency, "create": create, "status": status}
        self.results["api"].append(row)
        print(f"api  workers={workers} c={concurrency}: create {create['per_second']}/s "
              f"p50 {create['p50_ms']} ms p99 {create['p99_ms']} ms; status {status['per_second']}/s "
              f"p50 {status['p50_ms']} ms p99 {status['p99_ms']} ms", flush=True)

    # held: N tasks at once with the real delay.
    def phase_held(self) -> None:
        for count in self.args.held:
            self._tasks_run("held", f"held-{count}", count=count)

    # rate: R tasks/s for a duration.
    def phase_rate(self) -> None:
        for rate in self.args.rates:
            self._tasks_run("rate", f"rate-{rate:g}", rate=rate)

    def _tasks_run(self, phase: str, tag: str, *, count: int = 0, rate: float = 0.0) -> None:
        args = self.args
        environment = platform_environment(args, tag, delay=args.delay, api_workers=args.api_workers[0],
                                           prefetch=self.prefetch(), workdir=self.workdir)
        with running_platform(environment, self.workdir / "logs" / tag) as stack:
            sampler = self.sampler_for(stack)
            sampler.start()
            try:
                time.sleep(1.0)
                baseline_at = time.monotonic()
                before = sampler.snapshot()
                if phase == "held":
                    jobs = self.jobs(stack, "submit", args.submit_concurrency, count=count)
                else:
                    jobs = self.jobs(stack, "rate", max(64, int(rate / 10)), rate=rate,
                                     duration=args.rate_seconds)
                self.profiler.start_later(jobs[0].start_at - time.time(), tag, sampler)
                results = run_clients(jobs)
                submitted_at = time.monotonic()
                creates = latency_figures(results)
                task_ids = [task_id for result in results for _, task_id in result.tasks]
                deadline = submitted_at + args.delay + args.settle
                outcomes = asyncio.run(follow_outcomes(environment, task_ids, args.delay, deadline))
                after = sampler.snapshot()
            finally:
                sampler.stop()
                profiles = self.profiler.finish()
            figures = overhead_figures(outcomes)
            in_flight = outcomes.peak_running
            row: dict[str, Any] = {
                "tag": tag,
                "delay_seconds": args.delay,
                "submit": creates,
                "outcome": figures,
                "resources": resource_figures(sampler, before, after, len(task_ids), baseline_at, in_flight),
                "profiles": profiles,
            }
            if phase == "held":
                row["n"] = count
                row["submission_rate"] = creates["per_second"]
            else:
                row["rate"] = rate
                row["rate_seconds"] = args.rate_seconds
                row["achieved_rate"] = creates["per_second"]
                row["generator_max_lag_ms"] = ms(max(result.max_lag for result in results))
                row["passed"] = bool(
                    figures["lost"] == 0 and creates["errors"] == {} and creates["p99_ms"] < 100
                    and figures["overhead_p99_ms"] is not None and figures["overhead_p99_ms"] < 1000
                )
            self.results[phase].append(row)
            print(f"{tag}: submitted {figures['submitted']} at {creates['per_second']}/s "
                  f"(create p99 {creates['p99_ms']} ms, errors {creates['errors']}); "
                  f"completed {figures['completed']} failed {figures['failed']} lost {figures['lost']}; "
                  f"overhead p50 {figures['overhead_p50_ms']} p99 {figures['overhead_p99_ms']} "
                  f"max {figures['overhead_max_ms']} ms", flush=True)


# --- report -------------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    machine = report["machine"]
    lines += [
        f"Run {report['started']} — `{report['command']}`",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"kernel {machine['kernel']}, open files limit {machine['open_files_limit']}, "
        f"load average at start {machine['load_average_at_start']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + ".",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()) + ".",
        "",
    ]
    if report["api"]:
        lines += ["### API throughput (Service B and the stub only; HTTPS keep-alive)", "",
                  "| API_WORKERS | clients x concurrency | create req/s | create p50 / p99 ms "
                  "| status req/s | status p50 / p99 ms | errors "
                  "| API CPU ms per create / status | CPU s api / load generator / others (create) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in report["api"]:
            create, status = row["create"], row["status"]
            cpu = create["cpu_seconds"]
            clients = report["settings"]["clients"]
            lines.append(
                f"| {row['api_workers']} | {clients} x {row['concurrency'] // clients} "
                f"| {create['per_second']} | {create['p50_ms']} / {create['p99_ms']} "
                f"| {status['per_second']} | {status['p50_ms']} / {status['p99_ms']} "
                f"| {create['errors'] or '-'} {status['errors'] or ''} "
                f"| {create['api_cpu_ms_per_request']} / {status['api_cpu_ms_per_request']} "
                f"| {cpu.get('api', 0):.1f} / {cpu.get('bench', 0):.1f} / "
                f"{cpu.get('others (not this benchmark)', 0):.1f} of {create['seconds']} s |")
        lines.append("")
    for phase, title in (("held", "Held concurrency (all N submitted at once)"),
                         ("rate", "Sustained rate (open loop)")):
        rows = report[phase]
        if not rows:
            continue
        lines += [f"### {title}, stub delay {rows[0]['delay_seconds']:g} s", "",
                  "| run | submitted | submit rate /s | create p50 / p99 ms | completed | failed | lost "
                  "| overhead p50 / p99 / max ms | peak running | worker KiB/task | stub KiB/task | pass |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            outcome, submit, memory = row["outcome"], row["submit"], row["resources"]["memory"]
            passed = {True: "yes", False: "no"}.get(row.get("passed"), "")
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
                f"| {per.get('redis', 0)} | {per.get('rabbitmq', 0)} | {per.get('bench', 0)} "
                f"| {total.get('others (not this benchmark)', 0)} "
                f"of {row['resources']['window_seconds']} s |")
        lines += ["", "Peak RSS (MiB) and open files per process:", ""]
        for row in rows:
            processes = row["resources"]["processes"]
            lines.append(f"- {row['tag']}: " + "; ".join(
                f"{name.split(' (')[0]} {p['peak_rss_mib']} MiB / {p['peak_open_files']} files"
                for name, p in processes.items()))
        lines.append("")
    profiled = [(f"{row['api_workers']}w c{row['concurrency']} {kind}", row[kind]["profiles"])
                for row in report["api"] for kind in ("create", "status") if row[kind].get("profiles")]
    profiled += [(row["tag"], row["profiles"]) for phase in ("held", "rate") for row in report[phase]
                 if row.get("profiles")]
    if profiled:
        lines += ["### Where the CPU goes (py-spy, share of on-CPU samples)", ""]
        for tag, processes in profiled:
            for name, summary in processes.items():
                top = ", ".join(f"{package} {value}%"
                                for package, value in summary["self_percent_by_package"].items())
                lines.append(f"- {tag}, {name}, {summary['samples']} samples; self time by package: {top}")
        lines.append("")
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    block = f"{BEGIN}\n{text}\n{END}"
    if path.exists():
        current = path.read_text()
        if BEGIN in current and END in current:
            head, _, rest = current.partition(BEGIN)
            _, _, tail = rest.partition(END)
            path.write_text(head + block + tail)
            return
        path.write_text(current.rstrip() + "\n\n" + block + "\n")
        return
    path.write_text(f"# Benchmark results\n\n{block}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limits = raise_open_files_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = (REPO / args.reports / f"bench-{stamp}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    from provisioning.certs import ensure_certificates

    ensure_certificates(Path(os.environ.get("CERT_DIR", str(REPO / "certs"))))
    bench = Bench(args, workdir)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "task bench -- " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_facts(),
        "settings": {
            "clients": args.clients, "stub_delay_seconds": args.delay, "API_WORKERS": args.api_workers,
            "STUB_WORKERS": args.stub_workers, "WORKER_PROCESSES": args.worker_processes,
            "WORKER_PREFETCH": bench.prefetch(), "submit_concurrency": args.submit_concurrency,
            "api_concurrency": args.api_concurrency, "api_seconds": args.api_seconds,
            "rate_seconds": args.rate_seconds, "settle_seconds": args.settle,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            "OTEL_SDK_DISABLED": os.environ.get("OTEL_SDK_DISABLED", "false"),
            "open_files": f"{limits[0]}/{limits[1]}", **dict(a.split("=", 1) for a in args.platform_env),
        },
    }
    report["machine"]["versions"].update(asyncio.run(service_versions(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))))
    print(f"benchmark {report['command']} -> {workdir}", flush=True)
    for phase in ("api", "held", "rate"):
        if phase in args.phases:
            getattr(bench, f"phase_{phase}")()
    report.update(bench.results)
    text = render(report)
    print("\n" + text)
    (workdir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    (workdir / "RESULTS.md").write_text(text + "\n")
    results_path = Path(args.results) if args.results else (None if args.quick else RESULTS_FILE)
    if results_path is not None:
        write_results(results_path, text)
        print(f"results written to {results_path}")
    print("BENCH_JSON " + json.dumps(report, default=str, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
