"""Deleting a throwaway run's data on the real Redis and RabbitMQ: its keys and queues go, no
one else's, and the platform's own names are refused."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from cpe_devkit.environment import MACHINE_AMQP_URL as AMQP_URL
from cpe_devkit.environment import MACHINE_REDIS_URL as REDIS_URL
from cpe_devkit.environment import isolated_environment
from cpe_devkit.probes import declare_queues, queue_exists
from cpe_devkit.run_data import NotAThrowawayRun, delete_run_data
from provisioning.messaging import all_queues


async def test_a_runs_keys_and_queues_with_their_dead_letter_queues_are_deleted_and_no_others() -> None:
    run, neighbour = isolated_environment("data"), isolated_environment("data")
    queues = all_queues(run["TASKS_QUEUE"], run["RESULTS_QUEUE"])
    await declare_queues(AMQP_URL, [*queues, neighbour["TASKS_QUEUE"]])
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.mset({f"{run['REDIS_KEY_PREFIX']}task:{n}": "x" for n in range(7000)})
        await client.set(f"{neighbour['REDIS_KEY_PREFIX']}task:1", "kept")

        await delete_run_data(run)

        assert [key async for key in client.scan_iter(match=f"{run['REDIS_KEY_PREFIX']}*")] == []
        assert [await queue_exists(AMQP_URL, queue) for queue in queues] == [False] * 4
        assert await client.get(f"{neighbour['REDIS_KEY_PREFIX']}task:1") == b"kept"
        assert await queue_exists(AMQP_URL, neighbour["TASKS_QUEUE"])
    finally:
        await delete_run_data(neighbour)
        await client.aclose()


@pytest.mark.parametrize("platform_names", [
    {"REDIS_KEY_PREFIX": "provisioning:"},
    {"TASKS_QUEUE": "tasks_queue"},
    {"RESULTS_QUEUE": "results_queue"},
])
async def test_the_platforms_own_key_prefix_and_queues_are_refused_and_nothing_is_deleted(
    platform_names: dict[str, str]
) -> None:
    run = {**isolated_environment("data"), **platform_names}
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.set(f"{run['REDIS_KEY_PREFIX']}task:refused-check", "kept", ex=60)
        with pytest.raises(NotAThrowawayRun):
            await delete_run_data(run)
        assert await client.get(f"{run['REDIS_KEY_PREFIX']}task:refused-check") == b"kept"
    finally:
        await client.delete(f"{run['REDIS_KEY_PREFIX']}task:refused-check")
        await client.aclose()
