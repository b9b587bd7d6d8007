"""A pooled Redis connection that the network reset while it sat idle costs no command: the store's
client retries it on a new connection, under uvloop (Service B's loop, where a write to the dead
transport raises RuntimeError) as under asyncio's own loop. Through the fault proxy, to the real
Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import uvloop

from cpe_devkit.fault_proxy import FaultProxy
from provisioning.redis_connection import store_client
from provisioning.settings import RedisSettings

pytestmark = pytest.mark.timeout(30)


async def ping_after_a_reset(settings: RedisSettings) -> tuple[bool, int]:
    """PING, reset the idle pooled connection, PING again: the answer and the proxy's resets."""
    parts = urlsplit(settings.url)
    async with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        through = dataclasses.replace(
            settings, url=parts._replace(netloc=f"{parts.hostname}:{proxy.port}").geturl())
        client = store_client(through)
        try:
            assert await client.redis.ping()
            proxy.reset()
            await asyncio.sleep(0.2)  # the loop sees the reset: the transport is closed
            await proxy.heal()
            answered = bool(await client.redis.ping())
        finally:
            await client.aclose()
        return answered, proxy.stats.resets


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop],
                         ids=["uvloop", "asyncio"])
def test_a_command_on_a_pooled_connection_reset_while_idle_is_retried_on_a_new_one(
    redis_settings: RedisSettings, loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(ping_after_a_reset(redis_settings)) == (True, 1)
