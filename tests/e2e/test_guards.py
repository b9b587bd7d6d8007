"""Optional bearer-token authentication, and load shedding at Service B's in-flight limit."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from cpe_devkit.client import Client, client_session
from cpe_devkit.client import request_body as body
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import e2e_environment

TOKEN = "t0ken-for-tests-only"


@pytest.fixture
def guarded_api(cert_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    environment = e2e_environment(cert_dir)
    environment.update({"API_TOKENS": f"other-token,{TOKEN}", "API_METRICS_PORT": "0"})
    with throwaway_stack(environment, tmp_path, only=("api",), ready_timeout=30) as stack:
        yield stack


async def post(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], object]:
    async with session.post(f"{url}/api/v1/equipment/cpe/GUARD0001", json=body(), headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
async def test_without_an_accepted_token_the_api_answers_401_and_nothing_more(
    guarded_api: Stack, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with client_session(guarded_api.ca_file) as session:
        status, response_headers, answer = await post(session, guarded_api.api_url, headers)
    assert (status, answer) == (401, {"code": 401, "message": "Unauthorized"})
    assert response_headers["WWW-Authenticate"] == "Bearer"


async def test_an_accepted_token_opens_the_api_and_health_needs_none(guarded_api: Stack) -> None:
    async with client_session(guarded_api.ca_file) as session:
        status, _, answer = await post(session, guarded_api.api_url, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and answer["code"] == 200  # type: ignore[index]
        async with session.get(f"{guarded_api.api_url}/health") as response:
            assert response.status == 200


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: Redis hanging."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
async def limited_client(cert_dir: Path, tmp_path: Path, silent_redis: int) -> AsyncIterator[Client]:
    environment = e2e_environment(cert_dir)
    environment.update({
        "API_MAX_IN_FLIGHT": "2", "API_METRICS_PORT": "0", "REDIS_TIMEOUT_SECONDS": "3",
        "REDIS_URL": f"redis://127.0.0.1:{silent_redis}/0",
    })
    with throwaway_stack(environment, tmp_path, only=("api",), ready_timeout=30, healthy=False) as stack:
        async with client_session(stack.ca_file) as session:
            yield Client(session, stack.api_url)


async def test_past_the_in_flight_limit_requests_are_shed_with_503_and_retry_after(limited_client: Client) -> None:
    hanging = [asyncio.create_task(limited_client.create(f"SHED{n:06d}")) for n in range(2)]
    await asyncio.sleep(0.5)  # both hold their place, waiting on the silent Redis
    async with limited_client.session.post(
        f"{limited_client.base}/api/v1/equipment/cpe/SHED999999", json=body()
    ) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert await response.json() == {"code": 503, "message": "Service is overloaded, retry later"}
    assert [await task for task in hanging] == [(500, {"code": 500, "message": "Internal provisioning exception"})] * 2
    # Places are given back: the next request is admitted (and fails on the silent Redis again).
    assert (await limited_client.create("SHED000003"))[0] == 500
