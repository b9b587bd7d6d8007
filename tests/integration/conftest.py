"""Fixtures of the integration tests (the real Redis and RabbitMQ)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from provisioning.settings import RedisSettings


@pytest.fixture
async def raw_redis(redis_settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the run's Redis, to look at keys behind the store's back."""
    client = aioredis.Redis.from_url(redis_settings.url, decode_responses=True)
    yield client
    await client.aclose()
