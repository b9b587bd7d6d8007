"""Fault 3: Redis restarts while tasks are running.

Redis keeps its data in an append-only file fsynced on every write, so every task record
written before the restart is there after it. While Redis is down Service B answers 500 to
creates and to status reads (and its health check says which store is down); the workers and
the results consumer hold the messages they have until Redis answers again. Service B
recovers by itself: the same process answers every request again once Redis is back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger, equipment

TASKS_BEFORE = 60
TASKS_WHILE_DOWN = 5
CONCURRENT_REQUESTS = 60
INTERNAL = (500, {"code": 500, "message": "Internal provisioning exception"})
TASK_NOT_FOUND = (404, {"code": 404, "message": "The requested task is not found"})


async def wait_running(platform: FaultPlatform, task_ids: list[str], timeout: float) -> None:
    """Wait until no task is pending any more: each is at Service A, or past it."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = await platform.statuses(task_ids)
        if all(status != "pending" for status in statuses.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks still pending after {timeout} s")
        await asyncio.sleep(0.1)


async def restart_redis(platform: FaultPlatform) -> float:
    """Stop Redis, start it again on the same data, wait for Service B's health; seconds down."""
    started = time.monotonic()
    await asyncio.to_thread(platform.redis.stop)
    await asyncio.to_thread(platform.redis.start)
    await platform.wait_health(200, timeout=30)
    return time.monotonic() - started


@pytest.mark.timeout(120)
async def test_redis_restart_loses_no_task_and_results_wait_until_it_is_back(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS="2")
    service_b = platform.stack.processes["api"]
    before = await ledger.create_many(platform.client, TASKS_BEFORE)
    assert len(before) == TASKS_BEFORE
    await wait_running(platform, before, timeout=20)

    outage_started = time.monotonic()
    await asyncio.to_thread(platform.redis.stop)
    health_while_down = await platform.wait_health(503, timeout=10)
    await ledger.create_many(platform.client, TASKS_WHILE_DOWN)
    status_while_down = await platform.client.status(ledger.accepted[before[0]], before[0])
    await asyncio.sleep(2.5)  # the stub answers meanwhile: the results wait for Redis
    await asyncio.to_thread(platform.redis.start)
    await platform.wait_health(200, timeout=30)
    outage = time.monotonic() - outage_started

    await ledger.settle(platform.statuses, timeout=60)
    depths = await platform.wait_queues_empty(timeout=20)
    ledger.note(
        outage_seconds=round(outage, 1),
        results_held_during_outage=len(platform.logged_tasks("api", "cannot store a result yet")),
        tasks_found_after_restart=sum(ledger.statuses[t] is not None for t in before),
    )

    assert health_while_down["redis"] is False
    assert ledger.refused == TASKS_WHILE_DOWN and ledger.unexpected == {}
    assert status_while_down == INTERNAL
    assert ledger.notes["results_held_during_outage"] > 0, "no result met the outage"
    assert ledger.notes["tasks_found_after_restart"] == TASKS_BEFORE
    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (TASKS_BEFORE, 0)
    assert service_b.poll() is None and platform.stack.processes["api"] is service_b
    assert {queue: (d.ready, d.unacked) for queue, d in depths.items()} == dict.fromkeys(
        platform.queues, (0, 0))


@pytest.mark.timeout(90)
async def test_service_b_answers_every_request_as_soon_as_redis_is_back(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform()
    client = platform.client
    # Requests at once, so that Service B holds that many pooled Redis connections.
    await ledger.create_many(client, CONCURRENT_REQUESTS)
    assert len(ledger.accepted) == CONCURRENT_REQUESTS

    outage = await restart_redis(platform)

    async def status_of_an_unknown_task() -> tuple[int, dict[str, object]]:
        return await client.status(equipment(), str(uuid.uuid4()))

    reads = await asyncio.gather(*(status_of_an_unknown_task() for _ in range(CONCURRENT_REQUESTS)))
    after = await ledger.create_many(client, CONCURRENT_REQUESTS)
    read_answers = Counter(str(status) for status, _ in reads)
    ledger.note(
        outage_seconds=round(outage, 1),
        status_reads_after_recovery=dict(read_answers),
        creates_refused_after_recovery=ledger.refused,
    )

    assert reads == [TASK_NOT_FOUND] * CONCURRENT_REQUESTS, read_answers
    assert len(after) == CONCURRENT_REQUESTS, f"{ledger.refused} creates answered 500"
