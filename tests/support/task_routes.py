"""Calls of Service B's additions around a task (cancel, v2 detail and history) for the
end-to-end tests, beside the kit's ``Client`` of the classic operations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from cpe_devkit.client import Client, client_session, status_path
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import e2e_environment

POLL_SECONDS = 0.1


@asynccontextmanager
async def client_of(stack: Stack) -> AsyncIterator[Client]:
    """A ``Client`` of the stack's Service B, its session closed afterwards."""
    async with client_session(stack.ca_file) as session:
        yield Client(session, stack.api_url)


def module_platform(tag: str, *, only: tuple[str, ...] | None = None,
                    **overrides: str) -> Callable[..., Iterator[Stack]]:
    """A module-scoped fixture: a throwaway platform with the end-to-end settings and
    ``overrides`` (``only`` those components, else all three)."""

    @pytest.fixture(scope="module")
    def platform(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        environment = e2e_environment(cert_dir)
        environment.update(overrides)
        with throwaway_stack(environment, tmp_path_factory.mktemp(tag), only=only) as stack:
            yield stack

    return platform


def client_fixture(stack_fixture: str) -> Callable[..., AsyncIterator[Client]]:
    """A fixture: a ``Client`` of the platform that the fixture named ``stack_fixture`` gives."""

    @pytest.fixture
    async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
        async with client_of(request.getfixturevalue(stack_fixture)) as client:
            yield client

    return client


async def cancel(client: Client, equipment_id: str, task_id: str) -> tuple[int, dict[str, Any]]:
    async with client.session.delete(f"{client.base}{status_path(equipment_id, task_id)}") as response:
        return response.status, await response.json()


async def detail(client: Client, task_id: str) -> tuple[int, dict[str, Any]]:
    async with client.session.get(f"{client.base}/api/v2/tasks/{task_id}") as response:
        return response.status, await response.json()


async def history(client: Client, equipment_id: str, params: Mapping[str, str] | None = None
                  ) -> tuple[int, dict[str, Any]]:
    url = f"{client.base}/api/v2/equipment/{equipment_id}/tasks"
    async with client.session.get(url, params=params) as response:
        return response.status, await response.json()


async def wait_for_status(client: Client, task_id: str, status: str, timeout: float = 20
                          ) -> dict[str, Any]:
    """Poll the v2 detail until the task has ``status``; its detail then."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, answer = await detail(client, task_id)
        if answer.get("status") == status:
            return answer
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} not {status} after {timeout}s: {answer}")
        await asyncio.sleep(POLL_SECONDS)


async def run_keys(environment: Mapping[str, str]) -> dict[str, str]:
    """Every key under the run's prefix, with its value (of any of Redis's types) as text."""
    redis = aioredis.Redis.from_url(environment["REDIS_URL"], decode_responses=True)
    try:
        stored: dict[str, str] = {}
        async for name in redis.scan_iter(match=f"{environment['REDIS_KEY_PREFIX']}*", count=1000):
            stored[name] = str(await _value(redis, name))
        return stored
    finally:
        await redis.aclose()


async def _value(redis: aioredis.Redis, name: str) -> object:
    kind = await redis.type(name)
    readers: dict[str, Any] = {
        "string": lambda: redis.get(name), "hash": lambda: redis.hgetall(name),
        "list": lambda: redis.lrange(name, 0, -1), "set": lambda: redis.smembers(name),
        "zset": lambda: redis.zrange(name, 0, -1, withscores=True),
        "stream": lambda: redis.xrange(name),
    }
    assert kind in readers, f"{name} is a {kind!r}, which this search cannot read"
    return await readers[kind]()


async def dump_run_keys(environment: Mapping[str, str]) -> str:
    """Everything Redis holds under the run's key prefix, as text (for searching secrets)."""
    return json.dumps(await run_keys(environment))
