"""A subscription on a stalled network (through the fault proxy, to the real Redis) is given up
within its health check interval plus the socket timeout, instead of waiting for ever; a quiet
but healthy one is kept."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from cpe_devkit.fault_proxy import FaultProxy
from provisioning.redis_connection import RedisClient, subscriber_client
from provisioning.settings import RedisSettings

HEALTH_CHECK_SECONDS = 1
SOCKET_TIMEOUT_SECONDS = 0.5
POLL_SECONDS = 0.2
# The bound, from the last thing heard: the interval, the ping's socket timeout, one read.
GIVEN_UP_WITHIN = HEALTH_CHECK_SECONDS + SOCKET_TIMEOUT_SECONDS + POLL_SECONDS
MARGIN_SECONDS = 2.0  # a busy machine's scheduling


@pytest.fixture
async def proxy(redis_settings: RedisSettings) -> AsyncIterator[FaultProxy]:
    parts = urlsplit(redis_settings.url)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as running:
        yield running


@pytest.fixture
async def client(proxy: FaultProxy, redis_settings: RedisSettings) -> AsyncIterator[RedisClient]:
    parts = urlsplit(redis_settings.url)
    settings = dataclasses.replace(
        redis_settings, socket_timeout_seconds=SOCKET_TIMEOUT_SECONDS,
        url=parts._replace(netloc=f"{parts.hostname}:{proxy.port}").geturl())
    opened = subscriber_client(settings, client_name=f"test-stall-{uuid.uuid4().hex[:8]}",
                               health_check_seconds=HEALTH_CHECK_SECONDS)
    yield opened
    await opened.aclose()


async def read_for(pubsub: aioredis.client.PubSub, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pubsub.get_message(timeout=POLL_SECONDS)


async def test_a_stalled_subscription_fails_within_its_health_check_and_socket_timeout(
    client: RedisClient, proxy: FaultProxy,
) -> None:
    pubsub = await client.pubsub()
    await pubsub.subscribe(f"stall-{uuid.uuid4().hex}")
    await read_for(pubsub, 0.5)  # the subscription is confirmed
    proxy.stall()
    stalled = time.monotonic()
    with pytest.raises(aioredis.ConnectionError, match="heard nothing"):
        await asyncio.wait_for(read_for(pubsub, 30), 30)
    assert time.monotonic() - stalled <= GIVEN_UP_WITHIN + MARGIN_SECONDS
    await proxy.heal()
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_quiet_healthy_subscription_is_kept_past_several_health_checks(
    client: RedisClient, raw_redis: aioredis.Redis,
) -> None:
    channel = f"quiet-{uuid.uuid4().hex}"
    pubsub = await client.pubsub()
    await pubsub.subscribe(channel)
    await read_for(pubsub, 3 * GIVEN_UP_WITHIN)  # raises if it gives up
    await raw_redis.publish(channel, "still here")
    message = None
    for _ in range(20):
        message = await pubsub.get_message(timeout=POLL_SECONDS)
        if message is not None:
            break
    assert message is not None and message["data"] == "still here"
    await pubsub.aclose()  # type: ignore[no-untyped-call]
