"""The end-of-session sweep finds what any environment leaks: every environment builder names
its keys and queues under the one run prefix the sweep uses, and a sweep of that prefix deletes
a leaked queue and key of each of them from the machine's Redis and RabbitMQ.

(The fault tests' data live on their own throwaway servers, removed with them.)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import tests.conftest
from cpe_devkit import environment as kit
from cpe_devkit.probes import declare_queues, queue_exists
from cpe_devkit.run_data import sweep
from provisioning.messaging import dead_letter_queue
from tests.support.platforms import e2e_environment

CERT_DIR = Path("unused-certs")
ENVIRONMENTS: dict[str, Callable[[], dict[str, str]]] = {
    "integration": lambda: kit.isolated_environment("integration"),
    "e2e": lambda: e2e_environment(CERT_DIR),
    "load": lambda: kit.platform_environment(CERT_DIR, tag="load"),
    "observability": lambda: kit.platform_environment(CERT_DIR, tag="obs"),
    "dev launcher": lambda: kit.platform_environment(CERT_DIR, tag="dev"),
}


def names_of(environment: dict[str, str]) -> list[str]:
    tasks, results = environment["TASKS_QUEUE"], environment["RESULTS_QUEUE"]
    return [environment["REDIS_KEY_PREFIX"], tasks, results,
            dead_letter_queue(tasks), dead_letter_queue(results)]


def test_the_session_sweeps_the_one_prefix_the_kit_names_everything_under() -> None:
    assert vars(tests.conftest)["RUN_PREFIX"] is kit.RUN_PREFIX
    loaded_twice = [name for name, module in sys.modules.items()
                    if name != "tests.conftest" and getattr(module, "__file__", None) == tests.conftest.__file__]
    assert loaded_twice == []


@pytest.mark.parametrize("build", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
def test_every_environment_names_its_keys_and_queues_under_the_run_prefix(
    build: Callable[[], dict[str, str]]
) -> None:
    assert [name for name in names_of(build()) if not name.startswith(kit.RUN_PREFIX)] == []


def leak_and_sweep() -> tuple[list[str], list[str], int, int]:
    """In a process of its own (so its run prefix is its own): a queue and a key leaked under
    every environment's names, then the session's sweep. The leaked names and what was swept."""
    async def run() -> tuple[list[str], list[str], int, int]:
        environments = [build() for build in ENVIRONMENTS.values()]
        queues = [dead_letter_queue(env["TASKS_QUEUE"]) for env in environments]
        keys = [f"{env['REDIS_KEY_PREFIX']}task:leaked" for env in environments]
        await declare_queues(kit.MACHINE_AMQP_URL, queues)
        client = aioredis.Redis.from_url(kit.MACHINE_REDIS_URL)
        try:
            await client.mset(dict.fromkeys(keys, "leaked"))
        finally:
            await client.aclose()
        swept = await sweep(kit.RUN_PREFIX)
        return queues, keys, swept.queues, swept.keys

    return asyncio.run(run())


async def test_a_queue_and_a_key_leaked_under_every_environments_names_are_swept() -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
        queues, keys, swept_queues, swept_keys = await asyncio.wrap_future(process.submit(leak_and_sweep))

    assert (swept_queues, swept_keys) == (len(ENVIRONMENTS), len(ENVIRONMENTS))
    assert [queue for queue in queues if await queue_exists(kit.MACHINE_AMQP_URL, queue)] == []
    client = aioredis.Redis.from_url(kit.MACHINE_REDIS_URL)
    try:
        assert await client.exists(*keys) == 0
    finally:
        await client.aclose()
