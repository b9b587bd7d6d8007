"""A redis-server of the fault tests' own, which they may stop and restart (the RabbitMQ node
they restart is ``rabbit_node.RabbitNode``), and a Sentinel deployment of them
(``SentinelGroup``: a master, a replica and three sentinels) whose master they may kill, and a
Redis Cluster of them (``RedisClusterNodes``: 3 masters with a replica each) likewise.

None of it is the machine's: every process has its own port and directory, and keeps its data
across a restart in an append-only file fsynced on every write, so a restart is the honest one
a production store goes through.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .ports import free_port, port_is_free
from .processes import Background, wait_until

MASTER_NAME = "mymaster"
# A replica, or a killed master back as one, syncs at once (7.0 waits 5 s for more replicas).
SYNC_AT_ONCE = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
# A cluster master that stops answering for this long is failed over to its replica.
CLUSTER_NODE_TIMEOUT_MS = 2000
CLUSTER_BUS_OFFSET = 10_000  # a cluster node's bus port is its port plus this


@dataclass
class RedisServer:
    """A redis-server with append-only persistence, fsynced on every write."""

    directory: Path
    port: int = field(default_factory=free_port)
    # Command-line options added to every start, e.g. ``("--replicaof", "127.0.0.1", "6390")``.
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.server = Background(f"redis-server :{self.port}", self.directory / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.server.running

    def start(self, timeout: float = 20.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.server.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.directory), "--daemonize", "no", *self.options],
        )
        self.server.wait_until(self.answers, timeout, "answering PING")

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def replication(self) -> dict[str, object]:
        """``INFO replication`` (empty when the server does not answer)."""
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1,
                             decode_responses=True)
        try:
            return dict(client.info("replication"))
        except redis.RedisError:
            return {}
        finally:
            client.close()

    def has_online_replica(self, port: int) -> bool:
        """Whether this master counts the replica on ``port`` as online (what ``WAIT`` counts:
        after a diskless sync only once the replica's first acknowledgement arrived)."""
        return any(isinstance(value, dict) and value.get("port") == port
                   and value.get("state") == "online"  # redis-py parses slaveN into a dict
                   for key, value in self.replication().items() if key.startswith("slave"))

    def replica_in_sync_with(self, master_port: int) -> bool:
        info = self.replication()
        return (info.get("role") == "slave" and info.get("master_port") == master_port
                and info.get("master_link_status") == "up")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        self.server.stop(sig, timeout)

    def close(self) -> None:
        self.server.close()


@dataclass
class SentinelGroup:
    """One master, one replica and three sentinels (quorum 2), each on its own port.

    Failure detection and failover are short (``down_after_ms``, ``failover_timeout_ms``), so
    a SIGKILLed master is replaced in a few seconds: ``kill_master`` kills it and waits until
    every sentinel names the promoted replica; ``restart`` starts a killed server again on its
    port and data, and the sentinels make it a replica of the new master.
    """

    directory: Path
    master_name: str = MASTER_NAME
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    sentinel_count: int = 3

    def __post_init__(self) -> None:
        first = RedisServer(self.directory / "redis-a", options=SYNC_AT_ONCE)
        second = RedisServer(self.directory / "redis-b",
                             options=(*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(first.port)))
        self.servers = [first, second]
        self.sentinel_ports = [free_port() for _ in range(self.sentinel_count)]
        self.sentinels = [Background(f"redis-sentinel :{port}",
                                     self.directory / f"sentinel-{index}.log")
                          for index, port in enumerate(self.sentinel_ports)]

    @property
    def sentinel_addresses(self) -> str:
        """``REDIS_SENTINELS``: the sentinels as host:port, comma-separated."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def url(self, db: int = 0) -> str:
        """A ``REDIS_URL`` for the database (its host is the master's at this moment, though
        a client through Sentinel uses only its database, credentials and TLS)."""
        return f"redis://127.0.0.1:{self.master().port}/{db}"

    @property
    def running(self) -> bool:
        return all(server.running for server in self.servers) and all(
            sentinel.running for sentinel in self.sentinels)

    def start(self, timeout: float = 30.0) -> None:
        master, replica = self.servers
        master.start(timeout)
        replica.start(timeout)
        replica.server.wait_until(
            lambda: replica.replica_in_sync_with(master.port) and master.has_online_replica(
                replica.port), timeout, "in sync with its master")
        for index, (port, sentinel) in enumerate(zip(self.sentinel_ports, self.sentinels,
                                                     strict=True)):
            sentinel.start(["redis-server", str(self._write_config(index, port, master.port)),
                            "--sentinel"])
        wait_until(lambda: self._agreed_master() == master.port and self._all_see_everyone(),
                   timeout=timeout, what="the sentinels agreeing on the master")

    def _write_config(self, index: int, port: int, master_port: int) -> Path:
        directory = self.directory / f"sentinel-{index}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"  # rewritten by the sentinel as it learns
        config.write_text("\n".join([
            f"port {port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {directory}",
            f"sentinel monitor {self.master_name} 127.0.0.1 {master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}",
            f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.master_name} 1",
            "",
        ]))
        return config

    def _ask(self, port: int, *command: str) -> object:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                             decode_responses=True)
        try:
            return client.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def _master_ports(self) -> list[int | None]:
        """The master's port as each sentinel names it (None: it does not answer)."""
        found: list[int | None] = []
        for port in self.sentinel_ports:
            try:
                address = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            except redis.RedisError:
                found.append(None)
                continue
            found.append(int(address[1]) if isinstance(address, list | tuple) and address else None)
        return found

    def _agreed_master(self) -> int | None:
        ports = set(self._master_ports())
        return ports.pop() if len(ports) == 1 else None

    def _all_see_everyone(self) -> bool:
        """Every sentinel knows the other sentinels and the replica."""
        for port in self.sentinel_ports:
            try:
                state = self._ask(port, "SENTINEL", "MASTER", self.master_name)
            except redis.RedisError:
                return False
            fields = state if isinstance(state, dict) else {}  # redis-py parses the reply
            if (int(fields.get("num-other-sentinels", 0)) != self.sentinel_count - 1
                    or int(fields.get("num-slaves", 0)) < len(self.servers) - 1):
                return False
        return True

    def master(self) -> RedisServer:
        """The server every sentinel names as the master now."""
        port = self._agreed_master()
        for server in self.servers:
            if server.port == port:
                return server
        raise RuntimeError(f"the sentinels do not agree on a master: {self._master_ports()}")

    def kill_master(self, timeout: float = 30.0) -> tuple[RedisServer, float]:
        """SIGKILL the master and wait until every sentinel names another server; the killed
        server and the seconds from the kill to that agreement (the failover time)."""
        killed = self.master()
        killed.stop(signal.SIGKILL)
        started = time.monotonic()
        wait_until(lambda: self._agreed_master() not in (None, killed.port), timeout=timeout,
                   what="a replica promoted by the sentinels")
        return killed, time.monotonic() - started

    def restart(self, server: RedisServer, timeout: float = 30.0) -> float:
        """Start a stopped server again (same port and data) as a replica of the current master,
        as an orchestrator would (started as a master, it would be converted by the sentinels
        only after their 8 s of caution), and wait until it is in sync; seconds it took."""
        started = time.monotonic()
        master = self.master()
        server.options = (*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(master.port))
        server.start(timeout)
        server.server.wait_until(
            lambda: server.replica_in_sync_with(master.port) and master.has_online_replica(
                server.port), timeout, "in sync with the new master")
        return time.monotonic() - started

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()


def cluster_port() -> int:
    """A free port whose cluster bus port is free too."""
    for _ in range(100):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET < 65536 and port_is_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port with a free cluster bus port found")


@dataclass
class RedisClusterNodes:
    """A throwaway Redis Cluster: ``masters`` masters with ``replicas`` replica(s) each, every
    node a ``RedisServer`` of its own (port, directory, append-only file), on loopback."""

    directory: Path
    masters: int = 3
    replicas: int = 1
    nodes: list[RedisServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            for index in range(self.masters * (1 + self.replicas)):
                self.nodes.append(RedisServer(
                    self.directory / f"node-{index}", cluster_port(),
                    options=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                             *SYNC_AT_ONCE)))

    @property
    def url(self) -> str:
        """A seed node's URL (``REDIS_URL`` with ``REDIS_CLUSTER=true``)."""
        return self.nodes[0].url

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self, timeout: float = 60.0) -> None:
        """Start every node, create the cluster and wait until it serves every slot."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self.addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout)
        wait_until(self.healthy, timeout=timeout, what="a healthy cluster (every slot served, "
                   "every master with its replicas)")

    def info(self, node: RedisServer) -> dict[str, str]:
        """``CLUSTER INFO`` of one node ({} when it does not answer)."""
        client = redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1,
                             decode_responses=True)
        try:
            text = str(client.execute_command("CLUSTER", "INFO"))  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return {}
        finally:
            client.close()
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def roles(self) -> dict[int, str]:
        """Each running node's role ("master", or "slave" once its link to its master is up:
        "syncing" before), by port."""
        roles: dict[int, str] = {}
        for node in self.nodes:
            if not node.running:
                continue
            client = redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1,
                                 decode_responses=True)
            try:
                role = client.execute_command("ROLE")  # type: ignore[no-untyped-call]
                # A replica's ROLE: slave, master host, master port, link state, offset.
                roles[node.port] = ("syncing" if role[0] == "slave" and role[3] != "connected"
                                    else str(role[0]))
            except redis.RedisError:
                pass
            finally:
                client.close()
        return roles

    def healthy(self) -> bool:
        """Every running node sees the cluster ``ok``, and there are ``masters`` masters with
        ``replicas`` replicas each, in sync, among the running nodes (a replica that has not
        synced yet cannot take over)."""
        running = [node for node in self.nodes if node.running]
        if not all(self.info(node).get("cluster_state") == "ok" for node in running):
            return False
        roles = list(self.roles().values())
        return (roles.count("master") == self.masters
                and roles.count("slave") == self.masters * self.replicas)

    def serving(self) -> bool:
        """Every running node sees the cluster ``ok`` (every slot has a live master)."""
        running = [node for node in self.nodes if node.running]
        infos = [self.info(node) for node in running]
        return bool(infos) and all(info.get("cluster_state") == "ok" for info in infos)

    def master_of(self, key: str) -> RedisServer:
        """The node that is the master of ``key``'s slot now."""
        client = redis.RedisCluster(host="127.0.0.1", port=self._live().port,
                                    decode_responses=True)
        try:
            address = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return next(node for node in self.nodes if node.port == address.port)

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def masters_now(self) -> list[RedisServer]:
        roles = self.roles()
        return [node for node in self.nodes if roles.get(node.port) == "master"]

    def kill_master(self, victim: RedisServer | None = None, timeout: float = 30.0
                    ) -> tuple[RedisServer, float]:
        """SIGKILL a master (by default one that is not the seed, ``url``) and wait until its
        replica took over and the cluster serves every slot again: the node killed and the
        seconds from the kill to then."""
        if victim is None:
            victim = next(node for node in self.masters_now() if node is not self.nodes[0])
        before = {node.port for node in self.masters_now()} - {victim.port}
        victim.stop(signal.SIGKILL)
        killed = time.monotonic()

        def promoted() -> bool:
            masters = {node.port for node in self.masters_now()}
            return len(masters - before) == 1 and self.serving()

        wait_until(promoted, timeout=timeout, what="the replica promoted")
        return victim, time.monotonic() - killed

    def restart(self, node: RedisServer, timeout: float = 30.0) -> float:
        """Start a killed node again on its port and data: it rejoins as the replica of the
        master that replaced it. Seconds until the cluster is healthy again."""
        started = time.monotonic()
        node.start(timeout)
        wait_until(self.healthy, timeout=timeout, what="the killed node back as a replica")
        return time.monotonic() - started

    def _live(self) -> RedisServer:
        return next(node for node in self.nodes if node.running)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
