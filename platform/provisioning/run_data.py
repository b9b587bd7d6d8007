"""Deleting what a throwaway run left in Redis and RabbitMQ.

Tests and the benchmark give every run its own key prefix and queue names; afterwards its keys
and its queues (with their dead-letter queues) are deleted here. The platform's default prefix
and queue names are refused: this never empties a real deployment's data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aiormq
import redis.asyncio as aioredis

from . import names
from .environment import Environment
from .messaging import dead_letter_queue
from .settings import BrokerSettings, RedisSettings

DELETE_BATCH = 5000


class NotAThrowawayRun(ValueError):
    """The environment names the platform's default key prefix or queues."""


async def delete_run_data(environment: Mapping[str, str], queues: Sequence[str] | None = None) -> None:
    """Delete the run's Redis keys and its queues (or the ``queues`` named instead)."""
    env = Environment(environment)
    redis_settings = RedisSettings.from_env(env)
    broker_settings = BrokerSettings.from_env(env)
    if queues is None:
        queues = [queue for name in (broker_settings.tasks_queue, broker_settings.results_queue)
                  for queue in (name, dead_letter_queue(name))]
    refuse_defaults(redis_settings.key_prefix, queues)
    await delete_keys(redis_settings.url, redis_settings.key_prefix)
    await delete_queues(broker_settings.url, queues)


def refuse_defaults(key_prefix: str, queues: Sequence[str]) -> None:
    if key_prefix in ("", names.DEFAULT_KEY_PREFIX):
        raise NotAThrowawayRun(f"refusing to delete keys under the prefix {key_prefix!r}")
    defaults = {names.DEFAULT_TASKS_QUEUE, names.DEFAULT_RESULTS_QUEUE}
    defaults |= {dead_letter_queue(queue) for queue in defaults}
    if kept := defaults.intersection(queues):
        raise NotAThrowawayRun(f"refusing to delete the platform's own queues {sorted(kept)}")


async def delete_keys(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


async def delete_queues(url: str, queues: Sequence[str]) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
    finally:
        await connection.close()
