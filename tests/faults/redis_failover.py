"""The run both Redis failover tests make (Sentinel's master, a Cluster's master): a steady
load, the master SIGKILLed once enough creates were accepted and started again as a replica,
then the figures and what every failover must keep: 0 lost, no poison, 5xx only around it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from cpe_devkit.redis_server import RedisServer

from .harness import FaultPlatform
from .ledger import Ledger


class RedisDeployment(Protocol):
    """A deployment whose master can be killed and brought back (``SentinelGroup``,
    ``RedisClusterNodes``)."""

    def kill_master(self) -> tuple[RedisServer, float]: ...

    def restart(self, server: RedisServer) -> float: ...


async def kill_the_master_mid_run(platform: FaultPlatform, ledger: Ledger,
                                  deployment: RedisDeployment, *, tasks: int,
                                  per_second: float, kill_after_accepted: int) -> None:
    """Run the load, kill and restart the master, settle, note the figures, and assert."""
    stop = asyncio.Event()
    load = asyncio.create_task(ledger.steady_load(platform.client, stop, per_second=per_second,
                                                  limit=tasks))
    await ledger.wait_accepted(kill_after_accepted, timeout=30)
    killed_at = time.monotonic()
    killed, failover = await asyncio.to_thread(deployment.kill_master)
    replica_back = await asyncio.to_thread(deployment.restart, killed)
    await asyncio.wait_for(load, timeout=60)

    await ledger.settle(platform.statuses, timeout=60)
    depths = await platform.wait_queues_empty(timeout=20)
    failed_at = ledger.answered_5xx_at
    ledger.note(
        failover_seconds=round(failover, 1),
        replica_back_after_kill_seconds=round(failover + replica_back, 1),
        unavailable_window_seconds=round(failed_at[-1] - failed_at[0], 1) if failed_at else 0.0,
        window_start_after_kill_seconds=(round(failed_at[0] - killed_at, 1) if failed_at
                                         else None),
        answered_5xx=len(failed_at),
        records_restored=len(platform.logged_tasks("worker", "task had no record")
                             | platform.logged_tasks("api", "task had no record")),
        results_held=len(platform.logged_tasks("api", "cannot store a result yet")),
    )

    assert ledger.lost == {}, f"{len(ledger.lost)} accepted tasks lost"
    assert (ledger.completed, ledger.failed) == (len(ledger.accepted), 0)
    assert ledger.unexpected == {} and ledger.unanswered == 0
    assert ledger.refused > 0, "no create met the failover"
    # Every 500 falls between the kill and a moment after the replica was back.
    assert failed_at[0] >= killed_at
    assert failed_at[-1] - killed_at < failover + replica_back + 5
    assert {queue: (d.ready, d.unacked) for queue, d in depths.items()} == dict.fromkeys(
        platform.queues, (0, 0)), "a message was left behind or dead-lettered"
