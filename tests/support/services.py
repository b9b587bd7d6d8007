"""Whether a test session needs the machine's Redis and RabbitMQ, and whether they answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import aiormq
import pytest
import redis.asyncio as aioredis

from cpe_devkit.environment import MACHINE_AMQP_URL, MACHINE_REDIS_URL

REPO = Path(__file__).resolve().parents[2]
UNIT_TESTS = REPO / "tests" / "unit"
SERVICES_ANSWER_WITHIN_SECONDS = 15


async def machine_services_answer() -> str | None:
    """None when the machine's Redis and RabbitMQ both complete a real handshake, else why not."""
    try:
        async with asyncio.timeout(SERVICES_ANSWER_WITHIN_SECONDS):
            client = aioredis.Redis.from_url(MACHINE_REDIS_URL)
            try:
                await client.ping()
            finally:
                await client.aclose()
    except Exception as error:
        return f"Redis at {MACHINE_REDIS_URL} does not answer ({error!r})"
    try:
        async with asyncio.timeout(SERVICES_ANSWER_WITHIN_SECONDS):
            connection = await aiormq.connect(MACHINE_AMQP_URL)
            await connection.close()
    except Exception as error:
        return f"RabbitMQ at {MACHINE_AMQP_URL} does not complete an AMQP handshake ({error!r})"
    return None


def needs_machine_services(items: Sequence[pytest.Item]) -> bool:
    return not all(item.path.is_relative_to(UNIT_TESTS) for item in items)
