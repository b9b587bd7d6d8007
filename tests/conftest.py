"""Shared fixtures: every run gets its own Redis key prefix and queue names, cleaned up after.

Two session guards protect the machine's own services: the run stops at once when Redis or
RabbitMQ does not answer (instead of every test timing out in turn), and at the end whatever
this run left behind under its run id is removed (leaked quorum queues once piled up until the
broker stopped accepting connections).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiormq
import pytest
import redis.asyncio as aioredis

from provisioning.certs import ensure_certificates
from provisioning.devstack import Stack, running_stack
from provisioning.environment import Environment
from provisioning.run_data import delete_run_data
from provisioning.settings import BrokerSettings, RedisSettings, TlsSettings

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RUN_PREFIX = f"test-{uuid.uuid4().hex[:6]}-"
SERVICES_ANSWER_WITHIN_SECONDS = 15


def isolated_environment(tag: str) -> dict[str, str]:
    """Variables that keep one test's data apart from every other run's."""
    unique = f"{RUN_PREFIX}{tag}-{uuid.uuid4().hex[:8]}"
    return {
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"{unique}:",
        "AMQP_URL": AMQP_URL,
        "TASKS_QUEUE": f"{unique}.tasks",
        "RESULTS_QUEUE": f"{unique}.results",
        "RECONNECT_INITIAL_SECONDS": "0.1",
        "RECONNECT_MAX_SECONDS": "1",
    }


def delete_run_data_now(environment: Mapping[str, str]) -> None:
    """``delete_run_data`` from synchronous code, also while an event loop runs in this thread,
    through the machine's own Redis and RabbitMQ whatever addresses the run was given."""
    on_machine = {**environment, "REDIS_URL": REDIS_URL, "AMQP_URL": AMQP_URL}
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, delete_run_data(on_machine)).result()


@contextmanager
def throwaway_stack(environment: Mapping[str, str], log_dir: Path, **options: Any) -> Iterator[Stack]:
    """The platform (or ``only=`` some of it) for one test on the machine's Redis and RabbitMQ;
    afterwards it is stopped and the keys and queues of its run are deleted."""
    try:
        with running_stack(environment, log_dir, **options) as stack:
            yield stack
    finally:
        delete_run_data_now(environment)


async def machine_services_answer() -> str | None:
    """None when the machine's Redis and RabbitMQ both complete a real handshake, else why not."""
    try:
        async with asyncio.timeout(SERVICES_ANSWER_WITHIN_SECONDS):
            client = aioredis.Redis.from_url(REDIS_URL)
            try:
                await client.ping()
            finally:
                await client.aclose()
    except Exception as error:
        return f"Redis at {REDIS_URL} does not answer ({error!r})"
    try:
        async with asyncio.timeout(SERVICES_ANSWER_WITHIN_SECONDS):
            connection = await aiormq.connect(AMQP_URL)
            await connection.close()
    except Exception as error:
        return f"RabbitMQ at {AMQP_URL} does not complete an AMQP handshake ({error!r})"
    return None


async def delete_leftovers(prefix: str) -> int:
    """Delete every queue and Redis key named with this run's prefix; how many queues went."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "--no-table-headers"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    queues = [name for name in listing.stdout.split() if name.startswith(prefix)]
    await delete_run_data({"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix, "AMQP_URL": AMQP_URL},
                          queues=queues)
    return len(queues)


def needs_machine_services(items: Sequence[pytest.Item]) -> bool:
    return not all(item.path.is_relative_to(REPO / "tests" / "unit") for item in items)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if needs_machine_services(items) and (problem := asyncio.run(machine_services_answer())):
        pytest.exit(f"{problem}: start it (scripts/ensure-services.sh) before running these tests", returncode=3)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not needs_machine_services(session.items):
        return
    try:
        leftovers = asyncio.run(delete_leftovers(RUN_PREFIX))
    except Exception as error:  # the run's verdict stands; only the clean-up failed
        print(f"\ncould not sweep this run's queues and keys ({RUN_PREFIX}*): {error!r}")
        return
    if leftovers:
        print(f"\nswept {leftovers} queue(s) this run's fixtures left behind ({RUN_PREFIX}*)")


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    ensure_certificates(directory)
    return directory


@pytest.fixture
async def run_environment(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    environment = isolated_environment(request.node.name[:20].replace("[", "-").strip("-]"))
    yield environment
    await delete_run_data(environment)


@pytest.fixture
def redis_settings(run_environment: dict[str, str]) -> RedisSettings:
    return RedisSettings.from_env(Environment(run_environment))


@pytest.fixture
def broker_settings(run_environment: dict[str, str]) -> BrokerSettings:
    return BrokerSettings.from_env(Environment(run_environment))


@pytest.fixture
def tls_settings(cert_dir: Path) -> TlsSettings:
    return TlsSettings.from_env(Environment({"CERT_DIR": str(cert_dir)}))
