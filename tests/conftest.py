"""Session guards and the fixtures every suite shares.

Two session guards protect the machine's own services: the run stops at once when Redis or
RabbitMQ does not answer (instead of every test timing out in turn), and at the end whatever
this run left behind under its run prefix is swept (leaked quorum queues once piled up until
the broker stopped accepting connections). Helpers live in the development kit
(``cpe_devkit``) and ``tests.support``; this module holds fixtures and hooks only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cpe_devkit.environment import RUN_PREFIX, isolated_environment
from cpe_devkit.run_data import delete_run_data, sweep
from provisioning.certs import ensure_certificates
from provisioning.environment import Environment
from provisioning.settings import BrokerSettings, RedisSettings, TlsSettings
from tests.support.services import machine_services_answer, needs_machine_services


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if needs_machine_services(items) and (problem := asyncio.run(machine_services_answer())):
        pytest.exit(f"{problem}: start it (scripts/ensure-services.sh) before running these tests", returncode=3)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not needs_machine_services(session.items):
        return
    try:
        swept = asyncio.run(sweep(RUN_PREFIX))
    except Exception as error:  # the run's verdict stands; only the clean-up failed
        print(f"\ncould not sweep this run's queues and keys ({RUN_PREFIX}*): {error!r}")
        return
    if swept.queues or swept.keys:
        print(f"\nswept {swept.queues} queue(s) and {swept.keys} key(s) this run's fixtures "
              f"left behind ({RUN_PREFIX}*)")


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
