"""The platform of one benchmark run, started through the development kit.

The environment comes from ``cpe_devkit.environment.platform_environment`` (free ports, names of
their own under this benchmark's ``RUN_PREFIX``, the components' own defaults), with what the
benchmark sets on top: the stub's delay, the process counts, the worker prefetch, and
``--platform-env``. Every run's keys and queues are deleted when its platform stops.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from cpe_devkit.environment import MACHINE_AMQP_URL, MACHINE_REDIS_URL, platform_environment
from cpe_devkit.stack import Stack, throwaway_stack
from provisioning.environment import Environment
from provisioning.settings import DEFAULT_CERT_DIR, ApiSettings, BrokerSettings, RedisSettings

from .jobs import Target
from .options import REPO, BenchOptions

# Every key and queue of this benchmark's runs starts with it (cpe_devkit.run_data.sweep).
RUN_PREFIX = f"bench-{uuid.uuid4().hex[:6]}-"
READY_SECONDS = 90.0
# Tasks in flight the worker prefetch is sized for at least, and its margin.
MIN_PREFETCH_TASKS = 2000
PREFETCH_MARGIN = 1.1
REDIS_PORT, AMQP_PORT = 6379, 5672  # the protocols' own, for URLs that name no port


def cert_dir() -> Path:
    return REPO / os.environ.get("CERT_DIR", DEFAULT_CERT_DIR)


def worker_prefetch(options: BenchOptions) -> int:
    """WORKER_PREFETCH: as given, or enough for the largest N (of held and notice), or
    R x (delay + 5 s) (of rate and soak), in flight, of the phases that run."""
    if options.worker_prefetch:
        return options.worker_prefetch
    in_flight_by_phase = {
        "held": options.held, "notice": options.notice_held,
        "rate": [rate * (options.delay + 5) for rate in options.rates],
        "soak": [options.soak_rate * (options.soak_delay + 5)],
    }
    in_flight = [count for phase in options.phases for count in in_flight_by_phase.get(phase, ())]
    per_process = max([*in_flight, MIN_PREFETCH_TASKS]) / options.worker_processes * PREFETCH_MARGIN
    return math.ceil(round(per_process, 6))  # 12,500 x 1.1 is 13,750, not 13,751


def bench_environment(options: BenchOptions, tag: str, *, api_workers: int, work_dir: Path) -> dict[str, str]:
    environment = platform_environment(
        cert_dir(), tag=tag, work_dir=work_dir, api_workers=api_workers,
        stub_workers=options.stub_workers, worker_processes=options.worker_processes, prefix=RUN_PREFIX,
        STUB_DELAY_SECONDS=str(options.delay), WORKER_PREFETCH=str(worker_prefetch(options)),
    )
    environment.update(options.platform_overrides)  # --platform-env has the last word
    return environment


@contextmanager
def running_platform(environment: Mapping[str, str], log_dir: Path, only: tuple[str, ...] | None = None
                     ) -> Iterator[Stack]:
    """The platform for one run; afterwards the keys and queues of its run are deleted."""
    with throwaway_stack(environment, log_dir, only=only, ready_timeout=READY_SECONDS) as stack:
        yield stack


def target(stack: Stack) -> Target:
    """Where the clients go: Service B, its CA, and one of its tokens when it has some."""
    tokens = sorted(ApiSettings.from_env(stack.environment).tokens)
    return Target(stack.api_url, str(stack.ca_file), tokens[0] if tokens else "")


def service_urls(options: BenchOptions) -> tuple[str, str]:
    """The Redis and RabbitMQ URLs the platform will use: (Redis, RabbitMQ)."""
    env = Environment({"REDIS_URL": MACHINE_REDIS_URL, "AMQP_URL": MACHINE_AMQP_URL,
                       **options.platform_overrides})
    return RedisSettings.from_env(env).url, BrokerSettings.from_env(env).url


def service_ports(environment: Mapping[str, str]) -> dict[str, int]:
    """The local ports Redis and RabbitMQ listen on, to find their processes."""
    env = Environment(environment)
    return {"redis": urlsplit(RedisSettings.from_env(env).url).port or REDIS_PORT,
            "rabbitmq": urlsplit(BrokerSettings.from_env(env).url).port or AMQP_PORT}
