"""Deleting what a throwaway run left in Redis and RabbitMQ.

Tests and the benchmark give every run its own key prefix and queue names
(``environment.isolated_environment``); afterwards its keys and its queues (with their
dead-letter queues) are deleted here, and at the end of a session ``sweep`` deletes whatever
still carries the session's run prefix. The platform's default prefix and queue names are
refused: this never empties a real deployment's data.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import aiormq
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from provisioning import names
from provisioning.environment import Environment
from provisioning.messaging import all_queues, webhook_queues
from provisioning.settings import BrokerSettings, RedisSettings

from .environment import MACHINE_AMQP_URL, MACHINE_REDIS_URL

DELETE_BATCH = 5000
LIST_QUEUES_SECONDS = 60


class NotAThrowawayRun(ValueError):
    """The environment names the platform's default key prefix or queues."""


async def delete_run_data(environment: Mapping[str, str], queues: Sequence[str] | None = None) -> None:
    """Delete the run's Redis keys and its queues (or the ``queues`` named instead)."""
    env = Environment(environment)
    redis_settings = RedisSettings.from_env(env)
    broker_settings = BrokerSettings.from_env(env)
    if queues is None:
        queues = [*all_queues(broker_settings.tasks_queue, broker_settings.results_queue),
                  *webhook_queues(broker_settings)]
    refuse_defaults(redis_settings.key_prefix, queues)
    await delete_keys(redis_settings.url, redis_settings.key_prefix, cluster=redis_settings.cluster)
    await delete_queues(broker_settings.url, queues)


def refuse_defaults(key_prefix: str, queues: Sequence[str]) -> None:
    if key_prefix in ("", names.DEFAULT_KEY_PREFIX):
        raise NotAThrowawayRun(f"refusing to delete keys under the prefix {key_prefix!r}")
    defaults = {*all_queues(names.DEFAULT_TASKS_QUEUE, names.DEFAULT_RESULTS_QUEUE),
                *webhook_queues(BrokerSettings.from_env(Environment({})))}
    # Any schedule's delay queues of the default webhooks queue, not only the default schedule's.
    delays = f"{names.DEFAULT_WEBHOOKS_QUEUE}{names.DELAY_SUFFIX}"
    if kept := defaults.intersection(queues) | {queue for queue in queues if queue.startswith(delays)}:
        raise NotAThrowawayRun(f"refusing to delete the platform's own queues {sorted(kept)}")


async def delete_keys(url: str, prefix: str, *, cluster: bool = False) -> int:
    """Delete every key under ``prefix``; how many went. On a cluster (``url`` a seed node),
    the scan walks every master and each batch's delete is split per slot."""
    client = (cast(aioredis.Redis, RedisCluster.from_url(url)) if cluster
              else aioredis.Redis.from_url(url))
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += await client.delete(*batch)
                batch.clear()
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


async def delete_queues(url: str, queues: Sequence[str]) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
    finally:
        await connection.close()


def delete_run_data_now(environment: Mapping[str, str]) -> None:
    """``delete_run_data`` from synchronous code, also while an event loop runs in this thread,
    through the machine's own Redis and RabbitMQ whatever addresses the run was given."""
    on_machine = {**environment, "REDIS_URL": MACHINE_REDIS_URL, "AMQP_URL": MACHINE_AMQP_URL}
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, delete_run_data(on_machine)).result()


@dataclass(frozen=True, slots=True)
class Swept:
    queues: int
    keys: int


def queues_named(prefix: str) -> list[str]:
    """The machine's queues whose name starts with ``prefix`` (asked of ``rabbitmqctl``, the
    only way to list queues without the management plugin)."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "--no-table-headers"],
        capture_output=True, text=True, timeout=LIST_QUEUES_SECONDS, check=True,
    )
    return [name for name in listing.stdout.split() if name.startswith(prefix)]


async def sweep(prefix: str) -> Swept:
    """Delete every queue and Redis key on the machine's services named with a run's
    ``prefix``: what the run's own clean-up missed. How many of each went."""
    queues = queues_named(prefix)
    refuse_defaults(prefix, queues)
    keys = await delete_keys(MACHINE_REDIS_URL, prefix)
    await delete_queues(MACHINE_AMQP_URL, queues)
    return Swept(queues=len(queues), keys=keys)
