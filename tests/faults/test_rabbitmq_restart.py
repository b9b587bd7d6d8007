"""Fault 2: RabbitMQ goes away and comes back while tasks are being created and worked on.

While the broker is down Service B answers creates with 500 at once and keeps no record that
could run: a publish that never left deletes the record written before it; one cut off in
flight by the broker going down (its fate unknown) leaves a final ``failed`` tombstone with the
reason ``not_queued``, which is never worked on. Every task it answered 200 for was confirmed by
the broker, survives the restart in its quorum queue, and reaches a final status once the
workers and the results consumer have reconnected by themselves: no component is restarted.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from provisioning import names

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger

LOAD_PER_SECOND = 15
LOAD_LIMIT = 600
COMPLETED = "200 200 Completed"


async def task_records(platform: FaultPlatform) -> dict[str, tuple[str, str]]:
    """Every task record of this run in Redis: its status and failure reason, by task id."""
    prefix = f"{platform.environment['REDIS_KEY_PREFIX']}{names.TASK_KEY}"
    client = aioredis.Redis.from_url(platform.redis.url, decode_responses=True)
    try:
        records: dict[str, tuple[str, str]] = {}
        async for key in client.scan_iter(match=f"{prefix}*"):
            status, failure = await client.hmget(key, "status", "failure")
            # {prefix}task:{equipment id}:{task id}
            records[str(key).rsplit(":", 1)[-1]] = (str(status), str(failure or ""))
        return records
    finally:
        await client.aclose()


@pytest.mark.timeout(150)
async def test_rabbitmq_restart_refuses_creates_while_down_and_every_accepted_task_finishes(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform(STUB_DELAY_SECONDS="1")
    stop_load = asyncio.Event()
    load = asyncio.create_task(ledger.steady_load(
        platform.client, stop_load, per_second=LOAD_PER_SECOND, limit=LOAD_LIMIT))
    try:
        await asyncio.sleep(3)  # tasks queued, running and finishing
        accepted_before = len(ledger.accepted)
        outage_started = time.monotonic()
        await asyncio.to_thread(platform.rabbit.stop)
        health_while_down = await platform.wait_health(503, timeout=10)
        await asyncio.sleep(2)  # creates meanwhile are refused
        refused_while_down = ledger.refused
        await asyncio.to_thread(platform.rabbit.start)
        await platform.wait_health(200, timeout=30)
        outage = time.monotonic() - outage_started
        accepted_at_recovery = len(ledger.accepted)
        await asyncio.sleep(3)  # creates are accepted again
    finally:
        stop_load.set()
        await asyncio.wait_for(load, 60)
    accepted_after = len(ledger.accepted) - accepted_at_recovery

    await ledger.settle(platform.statuses, timeout=60)
    answers = await ledger.answers(platform.client)
    records = await task_records(platform)
    depths = await platform.wait_queues_empty(timeout=20, dead_letters=False)
    ledger.note(
        accepted_before_outage=accepted_before,
        refused_during_outage=refused_while_down,
        accepted_after_recovery=accepted_after,
        outage_seconds=round(outage, 1),
        records_in_redis=len(records),
        not_queued_tombstones=len(records.keys() - set(ledger.accepted)),
        service_b_reconnects=int(await platform.counter("api", "provisioning_amqp_reconnects_total")),
        worker_reconnects=int(await platform.counter("worker", "provisioning_amqp_reconnects_total")),
        dead_lettered_tasks=depths[platform.queues[2]].ready,
    )

    assert health_while_down["rabbitmq"] is False
    assert refused_while_down > 0, "the load never met the outage"
    assert accepted_before > 0 and accepted_after > 0
    assert ledger.unexpected == {} and ledger.unanswered == 0
    assert ledger.lost == {}
    assert (ledger.completed, ledger.failed) == (len(ledger.accepted), 0)
    assert answers == {COMPLETED: len(ledger.accepted)}
    assert set(ledger.accepted) <= records.keys()
    refused_records = {task: records[task] for task in records.keys() - set(ledger.accepted)}
    assert set(refused_records.values()) <= {("failed", "not_queued")}, \
        "a create answered 500 left a task record that could still run"
    assert len(refused_records) <= ledger.refused
    assert ledger.notes["service_b_reconnects"] >= 1
    assert ledger.notes["worker_reconnects"] >= int(platform.environment["WORKER_PROCESSES"])
    for queue in platform.queues[:2]:
        assert (depths[queue].ready, depths[queue].unacked) == (0, 0), depths
