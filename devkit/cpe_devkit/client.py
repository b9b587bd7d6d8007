"""A client of Service B that speaks the classic contract, and the request bodies it sends.

Every request body of the kit carries ``DEVICE_PASSWORD`` unless told otherwise, so a test can
search every log line and every span of a run for it.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

DEVICE_PASSWORD = "pw-Zq81-never-logged"
STILL_RUNNING = 204  # the body's code of a pending or running task
POLL_SECONDS = 0.2


def request_body(password: str = DEVICE_PASSWORD, *, interfaces: tuple[int, ...] = (1, 2, 3, 4),
                 vlan: int | None = 534, timeout_seconds: int = 14) -> dict[str, Any]:
    """A valid create body (the README's example, with the kit's password)."""
    parameters: dict[str, Any] = {"username": "admin", "password": password,
                                  "interfaces": list(interfaces)}
    if vlan is not None:
        parameters["vlan"] = vlan
    return {"timeoutInSeconds": timeout_seconds, "parameters": parameters}


def create_path(equipment_id: str) -> str:
    return f"/api/v1/equipment/cpe/{equipment_id}"


def status_path(equipment_id: str, task_id: str) -> str:
    return f"/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"


def client_session(ca_file: Path, *, limit: int = 300, token: str | None = None
                   ) -> aiohttp.ClientSession:
    """An HTTPS session that trusts the platform's CA (and sends a bearer ``token``)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=limit),
                                 headers=headers)


@dataclass
class Client:
    """Service B's two classic operations, and polling a task to its end."""

    session: aiohttp.ClientSession
    base: str

    async def create(self, equipment_id: str, payload: Any = None, *, raw: bytes | None = None
                     ) -> tuple[int, dict[str, Any]]:
        """POST a task: ``payload`` as JSON (``request_body()`` unless told), or ``raw`` bytes."""
        url = f"{self.base}{create_path(equipment_id)}"
        json_body = None if raw is not None else (request_body() if payload is None else payload)
        async with self.session.post(url, json=json_body, data=raw) as response:
            return response.status, await response.json()

    async def status(self, equipment_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(f"{self.base}{status_path(equipment_id, task_id)}") as response:
            return response.status, await response.json()

    async def final_status(self, equipment_id: str, task_id: str, timeout: float = 30
                           ) -> tuple[int, dict[str, Any]]:
        """Poll until the task is no longer running; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, answer = await self.status(equipment_id, task_id)
            if answer.get("code") != STILL_RUNNING:
                return status, answer
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"task {task_id} still running after {timeout}s")
            await asyncio.sleep(POLL_SECONDS)

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.session.get(f"{self.base}/health") as response:
            return response.status, await response.json()
