"""Fault: a Redis Cluster master SIGKILLed mid-run, with ``REDIS_CLUSTER=true``.

The platform runs on a cluster of the test's own (``RedisClusterNodes``: 3 masters with a
replica each, a 2 s node timeout), ``REDIS_URL`` naming a seed node that is never killed, and
(first run) ``REDIS_WAIT_REPLICAS=1``: a create answers 200 only once the key's replica has the
record, a result is acked only once it has the final status (``WAIT`` runs on the key's node).
While tasks are being created at a steady pace one master (not the seed) is SIGKILLed; the
cluster promotes its replica; the killed node is started again and rejoins as a replica, as an
orchestrator would. Until the promotion the cluster serves no slot (full coverage is
required), so every create answers 500; until the rejoin, with ``WAIT``, the promoted master
has no replica to acknowledge, so the creates and results of its devices wait. The second run
has no ``WAIT``: the consumers restore a record the failover lost from its messages.

Expected: every task answered 200 ends completed (0 lost), no poison, and Service B's 500/503
answers fall in one window around the failover, which the test measures and prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cpe_devkit.rabbit_node import RabbitNode
from cpe_devkit.redis_server import RedisClusterNodes

from .harness import FaultPlatform, fault_environment
from .ledger import Ledger
from .redis_failover import kill_the_master_mid_run

TASKS = 300
PER_SECOND = 50.0
KILL_AFTER_ACCEPTED = 80


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path / "redis-cluster")
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()
        nodes.close()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["wait-1-replica", "no-wait"])
async def test_a_redis_cluster_master_killed_mid_run_loses_no_accepted_task(
    cert_dir: Path, rabbit_node: RabbitNode, redis_cluster: RedisClusterNodes, tmp_path: Path,
    ledger: Ledger, wait_replicas: int,
) -> None:
    if not rabbit_node.running:
        rabbit_node.stop()
        rabbit_node.start()
    cluster = redis_cluster
    seed = cluster.nodes[0]
    environment = fault_environment(cert_dir, rabbit_node, seed, tmp_path, {
        "STUB_DELAY_SECONDS": "0.2",
        "REDIS_CLUSTER": "true",
        "REDIS_WAIT_REPLICAS": str(wait_replicas),
        "REDIS_WAIT_TIMEOUT_SECONDS": "0.5",
    })
    platform = await FaultPlatform.launch(environment, tmp_path / "logs", rabbit_node, seed)
    try:
        await kill_the_master_mid_run(platform, ledger, cluster, tasks=TASKS, per_second=PER_SECOND,
                                      kill_after_accepted=KILL_AFTER_ACCEPTED)
        print(f"\nredis cluster ({'WAIT 1' if wait_replicas else 'no WAIT'}): "
              f"{ledger.figures()}")
    finally:
        await platform.close()
