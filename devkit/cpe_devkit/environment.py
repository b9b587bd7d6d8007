"""The one builder of a throwaway platform's environment.

A throwaway run (a test, a benchmark phase, a smoke run) shares the machine's Redis and
RabbitMQ with everything else, so it gets a key prefix and queue names of its own, all
starting with its session's ``RUN_PREFIX``: at the end of a session whatever still carries
that prefix can be swept (``run_data.sweep``). Ports are free loopback ports. Defaults come
from the components' settings classes, never retyped here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from provisioning.environment import Environment
from provisioning.settings import BrokerSettings, RedisSettings

from .ports import free_port, free_port_range

# This process's run id: every name a throwaway run of this process creates starts with it.
RUN_PREFIX = f"test-{uuid.uuid4().hex[:6]}-"

# Where the platform looks by default: the machine's own Redis and RabbitMQ.
MACHINE_REDIS_URL = RedisSettings.from_env(Environment({})).url
MACHINE_AMQP_URL = BrokerSettings.from_env(Environment({})).url


def isolated_environment(tag: str, *, prefix: str | None = None) -> dict[str, str]:
    """Variables that keep one run's data apart from every other run's: a key prefix and
    queue names of its own under ``prefix`` (this process's ``RUN_PREFIX`` unless told), on the
    machine's Redis and RabbitMQ, with quick reconnection."""
    unique = f"{RUN_PREFIX if prefix is None else prefix}{tag}-{uuid.uuid4().hex[:8]}"
    return {
        "REDIS_URL": MACHINE_REDIS_URL,
        "REDIS_KEY_PREFIX": f"{unique}:",
        "AMQP_URL": MACHINE_AMQP_URL,
        "TASKS_QUEUE": f"{unique}.tasks",
        "RESULTS_QUEUE": f"{unique}.results",
        "WEBHOOKS_QUEUE": f"{unique}.webhooks",
        "RECONNECT_INITIAL_SECONDS": "0.1",
        "RECONNECT_MAX_SECONDS": "1",
    }


def platform_environment(
    cert_dir: Path,
    *,
    tag: str,
    work_dir: Path | None = None,
    api_workers: int = 1,
    stub_workers: int = 1,
    worker_processes: int = 2,
    inherit: Mapping[str, str] | None = None,
    prefix: str | None = None,
    **overrides: str,
) -> dict[str, str]:
    """The whole platform's environment for one throwaway run: ``isolated_environment`` names,
    the certificates in ``cert_dir``, free ports for both HTTPS services and every process's
    metrics (process ``i`` of a component serves on its base port + ``i``), the stub's shared
    behaviour file in ``work_dir``, then ``overrides`` (variable names as keyword arguments).

    ``inherit`` is the environment it starts from (``os.environ`` unless told), so that PATH,
    HOME and the OTEL_* settings of the caller reach the processes.
    """
    stub_port = free_port()
    environment = {
        **(os.environ if inherit is None else inherit),
        **isolated_environment(tag, prefix=prefix),
        "CERT_DIR": str(cert_dir),
        "API_PORT": str(free_port()),
        "API_WORKERS": str(api_workers),
        "STUB_PORT": str(stub_port),
        "STUB_WORKERS": str(stub_workers),
        "SERVICE_A_URL": f"https://127.0.0.1:{stub_port}",
        "WORKER_PROCESSES": str(worker_processes),
        "API_METRICS_PORT": str(free_port_range(api_workers)),
        "STUB_METRICS_PORT": str(free_port_range(stub_workers)),
        "WORKER_METRICS_PORT": str(free_port_range(worker_processes)),
    }
    if work_dir is not None:
        environment["STUB_BEHAVIOUR_FILE"] = str(work_dir / f"stub-behaviour-{stub_port}.json")
    environment.update(overrides)
    return environment
