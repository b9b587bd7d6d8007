"""Service B and the stub with several Sanic processes each: every process serves, and each
exposes its own metrics on base port + its index (the targets Prometheus scrapes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cpe_devkit.client import Client, client_session
from cpe_devkit.stack import throwaway_stack
from tests.support.platforms import e2e_environment

PROCESSES = 2
TASKS = 12


@pytest.fixture
async def multi_process_platform(cert_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[Client, dict[str, int]]]:
    environment = e2e_environment(cert_dir, api_workers=PROCESSES, stub_workers=PROCESSES,
                                  WORKER_METRICS_PORT="0")
    bases = {"API": int(environment["API_METRICS_PORT"]), "STUB": int(environment["STUB_METRICS_PORT"])}
    with throwaway_stack(environment, tmp_path) as stack:
        async with client_session(stack.ca_file) as session:
            yield Client(session, stack.api_url), bases


async def counter_total(session: aiohttp.ClientSession, port: int, name: str) -> float:
    """The counter's value summed over its labels, from one process's /metrics (retried while
    that process is still starting)."""
    for _ in range(100):
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
                break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"no metrics on port {port}")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return sum(sample.value for sample in families[name].samples if sample.name == f"{name}_total")


async def test_every_process_serves_and_the_per_process_metrics_add_up_to_the_traffic(
    multi_process_platform: tuple[Client, dict[str, int]]
) -> None:
    client, bases = multi_process_platform
    created = await asyncio.gather(*(client.create(f"MULTI{n:04d}") for n in range(TASKS)))
    assert [status for status, _ in created] == [200] * TASKS
    finals = await asyncio.gather(*(client.final_status(f"MULTI{n:04d}", answer["taskId"])
                                    for n, (_, answer) in enumerate(created)))
    assert [answer["code"] for _, answer in finals] == [200] * TASKS

    async with aiohttp.ClientSession() as plain:
        api = [await counter_total(plain, bases["API"] + i, "provisioning_tasks_created")
               for i in range(PROCESSES)]
        stub = [await counter_total(plain, bases["STUB"] + i, "equipment_stub_answers")
                for i in range(PROCESSES)]
    assert sum(api) == TASKS
    assert sum(stub) == TASKS
