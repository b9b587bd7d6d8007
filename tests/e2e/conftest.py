"""The real platform as processes over HTTPS: stub (short delay), Service B, worker pool."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import isolated_environment, throwaway_stack
from tests.ports import free_port

from provisioning.devstack import Stack

DEVICE_PASSWORD = "pw-Zq81-never-logged"
FAILING_ID = "FAILING001"
UNKNOWN_ID = "UNKNOWN001"
STUB_DELAY_SECONDS = 0.5




def body(password: str = DEVICE_PASSWORD) -> dict[str, Any]:
    return {
        "timeoutInSeconds": 14,
        "parameters": {"username": "admin", "password": password, "vlan": 534, "interfaces": [1, 2, 3, 4]},
    }


def platform_environment(cert_dir: Path) -> dict[str, str]:
    stub_port = free_port()
    return {
        **os.environ,
        **isolated_environment("e2e"),
        "CERT_DIR": str(cert_dir),
        "API_PORT": str(free_port()),
        "STUB_PORT": str(stub_port),
        "SERVICE_A_URL": f"https://127.0.0.1:{stub_port}",
        "STUB_DELAY_SECONDS": str(STUB_DELAY_SECONDS),
        "STUB_FAIL_IDS": FAILING_ID,
        "STUB_UNKNOWN_IDS": UNKNOWN_ID,
        "SERVICE_A_ATTEMPTS": "2",
        "SERVICE_A_BACKOFF_SECONDS": "0.05",
        "WORKER_PROCESSES": "2",
        "STUB_METRICS_PORT": str(free_port()),
        "API_METRICS_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "OTEL_SDK_DISABLED": "false",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def platform(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with throwaway_stack(platform_environment(cert_dir), tmp_path_factory.mktemp("logs")) as stack:
        yield stack


@dataclass
class Client:
    """A client of Service B that speaks the contract."""

    session: aiohttp.ClientSession
    base: str

    async def create(self, equipment_id: str, payload: Any = None, *, raw: bytes | None = None
                     ) -> tuple[int, dict[str, Any]]:
        url = f"{self.base}/api/v1/equipment/cpe/{equipment_id}"
        data = raw if raw is not None else None
        json_body = None if raw is not None else (body() if payload is None else payload)
        async with self.session.post(url, json=json_body, data=data) as response:
            return response.status, await response.json()

    async def status(self, equipment_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
        url = f"{self.base}/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"
        async with self.session.get(url) as response:
            return response.status, await response.json()

    async def final_status(self, equipment_id: str, task_id: str, timeout: float = 30
                           ) -> tuple[int, dict[str, Any]]:
        """Poll until the task is no longer running."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, answer = await self.status(equipment_id, task_id)
            if answer.get("code") != 204:
                return status, answer
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"task {task_id} still running after {timeout}s")
            await asyncio.sleep(0.2)


def client_session(ca_file: Path) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cafile=str(ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=300))


@pytest.fixture
async def client(platform: Stack) -> AsyncIterator[Client]:
    async with client_session(platform.ca_file) as session:
        yield Client(session, platform.api_url)
