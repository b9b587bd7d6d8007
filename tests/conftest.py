"""Shared fixtures: every run gets its own Redis key prefix and queue names, cleaned up after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiormq
import pytest
import redis.asyncio as aioredis

from provisioning.certs import ensure_certificates
from provisioning.environment import Environment
from provisioning.settings import BrokerSettings, RedisSettings, TlsSettings

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def isolated_environment(tag: str) -> dict[str, str]:
    """Variables that keep one test's data apart from every other run's."""
    unique = f"test-{tag}-{uuid.uuid4().hex[:8]}"
    return {
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"{unique}:",
        "AMQP_URL": AMQP_URL,
        "TASKS_QUEUE": f"{unique}.tasks",
        "RESULTS_QUEUE": f"{unique}.results",
        "RECONNECT_INITIAL_SECONDS": "0.1",
        "RECONNECT_MAX_SECONDS": "1",
    }


async def delete_run_data(environment: Mapping[str, str]) -> None:
    """Remove the keys and queues an isolated environment created."""
    client = aioredis.Redis.from_url(environment["REDIS_URL"])
    try:
        keys = [key async for key in client.scan_iter(match=f"{environment['REDIS_KEY_PREFIX']}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    connection = await aiormq.connect(environment["AMQP_URL"])
    try:
        channel = await connection.channel()
        for name in ("TASKS_QUEUE", "RESULTS_QUEUE"):
            for queue in (environment[name], f"{environment[name]}.dead"):
                await channel.queue_delete(queue)
    finally:
        await connection.close()


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
