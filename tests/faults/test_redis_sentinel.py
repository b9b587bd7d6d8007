"""Fault: the Redis master SIGKILLed mid-run, under Redis Sentinel.

The platform runs on a deployment of the test's own (``SentinelGroup``: a master, a replica and
three sentinels, quorum 2, a second of down-after), with ``REDIS_SENTINELS`` naming the
sentinels and (first run) ``REDIS_WAIT_REPLICAS=1``: a create answers 200 only once the replica has the
record, and a result is acked only once the replica has the final status. While tasks are being
created at a steady pace the master is SIGKILLed; the sentinels promote the replica; the killed
server is started again as a replica of the new master, as an orchestrator would. Until then the
new master has no replica to acknowledge, so creates answer 500 and results are held. The second
run has no ``WAIT``: it answers again as soon as the replica is promoted.

Expected: every task answered 200 ends completed (0 lost), no poison, and Service B's 500/503
answers fall in one window around the failover, which the test measures and prints.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpe_devkit.rabbit_node import RabbitNode
from cpe_devkit.redis_server import SentinelGroup

from .harness import FaultPlatform, fault_environment
from .ledger import Ledger
from .redis_failover import kill_the_master_mid_run

TASKS = 500
PER_SECOND = 50.0
KILL_AFTER_ACCEPTED = 100


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        group.start()
        yield group
    finally:
        group.close()
        for server in group.servers:
            shutil.rmtree(server.directory / "appendonlydir", ignore_errors=True)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["wait-1-replica", "no-wait"])
async def test_a_redis_master_killed_mid_run_under_sentinel_loses_no_accepted_task(
    cert_dir: Path, rabbit_node: RabbitNode, sentinel_group: SentinelGroup, tmp_path: Path,
    ledger: Ledger, wait_replicas: int,
) -> None:
    """With ``REDIS_WAIT_REPLICAS=1`` the guarantee is structural (a 200 is on the replica);
    with 0 (the default) a write the master acknowledged can be lost in the failover, and the
    consumers restore the missing records from the messages (``records_restored``)."""
    if not rabbit_node.running:
        rabbit_node.stop()
        rabbit_node.start()
    group = sentinel_group
    environment = fault_environment(cert_dir, rabbit_node, group.master(), tmp_path, {
        "STUB_DELAY_SECONDS": "0.2",
        "REDIS_SENTINELS": group.sentinel_addresses,
        "REDIS_WAIT_REPLICAS": str(wait_replicas),
        "REDIS_WAIT_TIMEOUT_SECONDS": "0.5",
    })
    platform = await FaultPlatform.launch(environment, tmp_path / "logs", rabbit_node,
                                          group.master())
    try:
        await kill_the_master_mid_run(platform, ledger, group, tasks=TASKS, per_second=PER_SECOND,
                                      kill_after_accepted=KILL_AFTER_ACCEPTED)
    finally:
        # The run's keys are on whichever server is the master now.
        platform.redis = group.master()
        platform.stack.environment = {**platform.stack.environment, "REDIS_URL": group.url()}
        await platform.close()
