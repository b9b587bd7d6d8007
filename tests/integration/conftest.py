"""Fixtures of the integration tests (the real Redis and RabbitMQ)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from provisioning.settings import RedisSettings
from provisioning.store import TaskStore


@pytest.fixture
async def raw_redis(redis_settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the run's Redis, to look at keys behind the store's back."""
    client = aioredis.Redis.from_url(redis_settings.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_settings: RedisSettings) -> AsyncIterator[TaskStore]:
    """A task store over the run's Redis (a module may define its own, with other limits)."""
    async with TaskStore(redis_settings) as store:
        yield store
