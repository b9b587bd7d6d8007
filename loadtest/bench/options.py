"""The benchmark's command line: every option also as a ``BENCH_*`` variable, and ``--quick``
changing the defaults (never an option given explicitly)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench

REPO = Path(__file__).resolve().parents[2]
RESULTS_FILE = REPO / "loadtest" / "RESULTS.md"
PHASES = ("api", "held", "rate", "notice")  # the default: the soak's half hour only when asked for
ALL_PHASES = (*PHASES, "soak")


@dataclass(frozen=True)
class BenchOptions:
    """The parsed command line, lists split and defaults resolved."""

    quick: bool
    phases: tuple[str, ...]
    delay: float
    held: tuple[int, ...]
    rates: tuple[float, ...]
    rate_seconds: float
    api_seconds: float
    api_concurrency: tuple[int, ...]
    api_workers: tuple[int, ...]
    stub_workers: int
    worker_processes: int
    worker_prefetch: int
    clients: int
    submit_concurrency: int
    settle: float
    profile: float
    notice_held: tuple[int, ...]
    notice_delay: float
    notice_modes: tuple[str, ...]
    notice_poll_interval: float
    notice_wait: float
    soak_rate: float
    soak_minutes: float
    soak_delay: float
    soak_poll_interval: float
    soak_sample_seconds: float
    soak_task_ttl: int
    platform_env: tuple[str, ...]
    results: str | None
    reports: str

    @property
    def platform_overrides(self) -> dict[str, str]:
        """``--platform-env NAME=VALUE`` as variables."""
        return dict(assignment.partition("=")[::2] for assignment in self.platform_env)


# Defaults that --quick changes: (variable, full run, quick run).
_SCALED_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "delay": ("BENCH_DELAY", "60", "2"),
    "held": ("BENCH_HELD", "1000,10000,20000", "200,1000"),
    "rates": ("BENCH_RATES", "300", "50"),
    "rate_seconds": ("BENCH_RATE_SECONDS", "300", "10"),
    "api_seconds": ("BENCH_API_SECONDS", "15", "4"),
    "settle": ("BENCH_SETTLE", "120", "15"),
    "notice_held": ("BENCH_NOTICE_HELD", "2000,10000", "200"),
    "notice_delay": ("BENCH_NOTICE_DELAY", "30", "3"),
    "soak_rate": ("BENCH_SOAK_RATE", "30", "20"),
    "soak_minutes": ("BENCH_SOAK_MINUTES", "30", "1"),
    "soak_delay": ("BENCH_SOAK_DELAY", "5", "2"),
    "soak_sample_seconds": ("BENCH_SOAK_SAMPLE_SECONDS", "30", "5"),
    "soak_task_ttl": ("BENCH_SOAK_TASK_TTL", "300", "20"),
}
# The soak's numbers that must be above zero (the task TTL is a whole number of seconds).
_SOAK_POSITIVE = ("soak_rate", "soak_minutes", "soak_delay", "soak_poll_interval", "soak_sample_seconds")
NOTICE_MODES = ("poll", "long-poll", "sse", "webhook")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    get = env.get
    summary = (bench.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench", description=summary,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute variant: 2 s delay, small N, short phases (overrides the defaults "
                             "below unless they are given explicitly)")
    parser.add_argument("--phases", default=get("BENCH_PHASES", ",".join(PHASES)),
                        help="comma-separated: api, held, rate, notice, soak (BENCH_PHASES; "
                             "default all but soak)")
    parser.add_argument("--delay", default=None,
                        help="the stub's delay in seconds for held and rate (BENCH_DELAY, 60)")
    parser.add_argument("--held", default=None, help="N values for held (BENCH_HELD, 1000,10000,20000)")
    parser.add_argument("--rates", default=None, help="R values in tasks/s for rate (BENCH_RATES, 300)")
    parser.add_argument("--rate-seconds", default=None,
                        help="duration of each rate (BENCH_RATE_SECONDS, 300)")
    parser.add_argument("--api-seconds", default=None,
                        help="duration of each api run (BENCH_API_SECONDS, 15)")
    parser.add_argument("--api-concurrency", default=get("BENCH_API_CONCURRENCY", "64"),
                        help="client concurrency of the api phase, comma-separated for several")
    parser.add_argument("--api-workers", default=get("BENCH_API_WORKERS", get("API_WORKERS", "1")),
                        help="API_WORKERS values, comma-separated: each is a separate api run; "
                             "held and rate use the first")
    parser.add_argument("--stub-workers", type=int, default=int(get("BENCH_STUB_WORKERS", "2")),
                        help="STUB_WORKERS (each holds about N/STUB_WORKERS connections)")
    parser.add_argument("--worker-processes", type=int, default=int(get("BENCH_WORKER_PROCESSES", "2")),
                        help="WORKER_PROCESSES (each holds about N/WORKER_PROCESSES connections)")
    parser.add_argument("--worker-prefetch", type=int, default=int(get("BENCH_WORKER_PREFETCH", "0")),
                        help="WORKER_PREFETCH; 0 = enough for the largest N or R x delay in flight")
    parser.add_argument("--clients", type=int, default=int(get("BENCH_CLIENTS", "2")),
                        help="client processes")
    parser.add_argument("--submit-concurrency", type=int, default=int(get("BENCH_SUBMIT_CONCURRENCY", "128")),
                        help="requests in flight while submitting held tasks, over all clients")
    parser.add_argument("--settle", default=None,
                        help="seconds after the expected end a task may still finish before it counts "
                             "as lost (BENCH_SETTLE, 120)")
    parser.add_argument("--profile", type=float, default=float(get("BENCH_PROFILE", "0")), metavar="SECONDS",
                        help="record py-spy profiles (py-spy comes with the dev extra) of every "
                             "platform process for this many seconds from the start of each run's load "
                             "(a rate run's: from the start of its steady window); "
                             "summaries go into the report")
    parser.add_argument("--notice-held", default=None,
                        help="N values for notice: tasks held, each with its waiting client "
                             "(BENCH_NOTICE_HELD, 2000,10000)")
    parser.add_argument("--notice-delay", default=None,
                        help="the stub's delay in seconds for notice (BENCH_NOTICE_DELAY, 30)")
    parser.add_argument("--notice-modes", default=get("BENCH_NOTICE_MODES", ",".join(NOTICE_MODES)),
                        help="comma-separated: poll, long-poll, sse, webhook (BENCH_NOTICE_MODES)")
    parser.add_argument("--notice-poll-interval", type=float,
                        default=float(get("BENCH_NOTICE_POLL_INTERVAL", "1")),
                        help="seconds between a polling client's status reads (1)")
    parser.add_argument("--notice-wait", type=float, default=float(get("BENCH_NOTICE_WAIT", "25")),
                        help="a long-poll's ?wait= in seconds (25, STATUS_MAX_WAIT_SECONDS' default)")
    parser.add_argument("--soak-rate", default=None,
                        help="soak: creates per second, open loop (BENCH_SOAK_RATE, 30)")
    parser.add_argument("--soak-minutes", default=None,
                        help="soak: how long the steady rate lasts (BENCH_SOAK_MINUTES, 30; 1 for --quick)")
    parser.add_argument("--soak-delay", default=None,
                        help="soak: the stub's delay in seconds, short so that tasks end throughout "
                             "(BENCH_SOAK_DELAY, 5)")
    parser.add_argument("--soak-poll-interval", type=float,
                        default=float(get("BENCH_SOAK_POLL_INTERVAL", "2")),
                        help="soak: seconds between a client's status reads of its task (2)")
    parser.add_argument("--soak-sample-seconds", default=None,
                        help="soak: seconds between samples of every process, Redis and the queues "
                             "(BENCH_SOAK_SAMPLE_SECONDS, 30)")
    parser.add_argument("--soak-task-ttl", default=None,
                        help="soak: the platform's TASK_TTL_SECONDS, so that Redis reaches a steady "
                             "state within the run (BENCH_SOAK_TASK_TTL, 300)")
    parser.add_argument("--platform-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the platform, e.g. LOG_LEVEL=WARNING (repeatable)")
    parser.add_argument("--results", default=get("BENCH_RESULTS"),
                        help="Markdown file whose generated part is replaced "
                             f"(default: {RESULTS_FILE.relative_to(REPO)}, none for --quick)")
    parser.add_argument("--reports", default=get("BENCH_REPORTS", "reports"), help="folder for bench-<time>/")
    return parser


def _soak_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The soak's numbers, each above zero, the task TTL in whole seconds; a mistake names its option."""
    numbers: dict[str, Any] = {}
    for name in (*_SOAK_POSITIVE, "soak_task_ttl"):
        option, text = "--" + name.replace("_", "-"), str(getattr(args, name))
        try:
            numbers[name] = int(text) if name == "soak_task_ttl" else float(text)
        except ValueError:
            parser.error(f"{option} wants {'whole seconds' if name == 'soak_task_ttl' else 'a number'}, "
                         f"got {text!r}")
        if not numbers[name] > 0:
            parser.error(f"{option} must be above zero, got {text}")
    return numbers


def parse_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> BenchOptions:
    """The options from ``argv`` (the command line unless told) and ``environ`` (``os.environ``)."""
    env = os.environ if environ is None else environ
    parser = _parser(env)
    args = parser.parse_args(argv)
    for name, (variable, full, quick) in _SCALED_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, env.get(variable, quick if args.quick else full))
    phases = tuple(phase.strip() for phase in args.phases.split(",") if phase.strip())
    if unknown := set(phases) - set(ALL_PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    modes = tuple(mode.strip() for mode in args.notice_modes.split(",") if mode.strip())
    if unknown := set(modes) - set(NOTICE_MODES):
        parser.error(f"unknown notice modes: {', '.join(sorted(unknown))}")
    if malformed := [a for a in args.platform_env if "=" not in a]:
        parser.error(f"--platform-env wants NAME=VALUE, got {', '.join(malformed)}")
    soak = _soak_numbers(parser, args)
    try:
        return BenchOptions(
            quick=args.quick, phases=phases, delay=float(args.delay), held=_ints(args.held),
            rates=_floats(args.rates), rate_seconds=float(args.rate_seconds),
            api_seconds=float(args.api_seconds), api_concurrency=_ints(args.api_concurrency),
            api_workers=_ints(args.api_workers), stub_workers=args.stub_workers,
            worker_processes=args.worker_processes, worker_prefetch=args.worker_prefetch,
            clients=args.clients, submit_concurrency=args.submit_concurrency, settle=float(args.settle),
            profile=args.profile, notice_held=_ints(args.notice_held), notice_delay=float(args.notice_delay),
            notice_modes=modes, notice_poll_interval=args.notice_poll_interval, notice_wait=args.notice_wait,
            **soak,
            platform_env=tuple(args.platform_env), results=args.results,
            reports=args.reports,
        )
    except ValueError as error:
        parser.error(str(error))
