"""RabbitMQ nodes of the tests' own, which they may stop, kill and start again; and clusters
of them (``RabbitCluster``).

A node is never the machine's: it has its own node name, ports (AMQP, Erlang distribution),
Erlang cookie (its HOME is its directory), configuration, plugins and data. Its data survive a
restart (quorum queues and persistent messages in the directory), so a restart is the honest
one a production broker goes through. A cluster's nodes share one cookie of their own (not
the machine's, so no mistaken ``rabbitmqctl`` of ours can reach the machine's node) and are
joined with ``rabbitmqctl join_cluster``, as an operator joins nodes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .ports import free_port
from .processes import Background, answers

RABBITMQ_BOOT_SECONDS = 60.0
RABBITMQCTL_SECONDS = 30.0
CLUSTER_SECONDS = 60.0  # a node (re)joining its cluster, its queues getting every member back
POLL_SECONDS = 0.25
PROMETHEUS_PLUGIN = "rabbitmq_prometheus"
# Resource alarms (``RabbitNode.raise_alarm``): a memory watermark far below what any node uses,
# and a disk free limit far above any disk; then RabbitMQ's defaults back.
MEMORY_ALARM_WATERMARK = "0.0000001"
DEFAULT_MEMORY_WATERMARK = "0.4"
DEFAULT_DISK_FREE_LIMIT = "50MB"
ALARM_SECONDS = 30.0  # RabbitMQ re-checks memory every 2.5 s and disk space every 10 s or sooner
ALARMS = ("memory", "disk")


def rabbitmq_scripts() -> Path | None:
    """Where rabbitmq-server and rabbitmqctl are, to run as the current user; None when not
    installed.

    Debian's /usr/sbin wrappers switch to the rabbitmq user, who could not write a temporary
    directory of ours; the scripts they wrap live in /usr/lib/rabbitmq/bin.
    """
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists():
        return debian
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


def installed_rabbitmq_scripts() -> Path:
    scripts = rabbitmq_scripts()
    if scripts is None:
        raise RuntimeError("rabbitmq-server is not installed")
    return scripts


@dataclass(frozen=True)
class QueueDepth:
    ready: int
    unacked: int


@dataclass
class RabbitNode:
    """A second RabbitMQ node on loopback; with ``plugins=(PROMETHEUS_PLUGIN,)`` it also
    serves its metrics on ``prometheus_port``."""

    directory: Path
    plugins: tuple[str, ...] = ()
    scripts: Path = field(default_factory=installed_rabbitmq_scripts)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"rabbit-test-{uuid.uuid4().hex[:8]}@localhost")
    # The Erlang cookie, written to the node's HOME; None: one of its own, made by the node.
    cookie: str | None = None

    def __post_init__(self) -> None:
        self.server = Background(f"RabbitMQ node {self.node}", self.directory / "rabbitmq.log")

    @property
    def address(self) -> str:
        """host:port of its AMQP listener, as clients and the platform's logs name it."""
        return f"127.0.0.1:{self.amqp_port}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    @property
    def running(self) -> bool:
        return self.server.running

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            "HOME": str(self.directory),  # the Erlang cookie: ours, shared with our rabbitmqctl
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            # Not the machine's rabbitmq-env.conf, which names the machine's node.
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def configuration(self) -> str:
        lines = [
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
            # Queue counts (list_queues) come from statistics emitted every interval: 5 s by
            # default, too stale to read a queue right after a consumer went away.
            "collect_statistics_interval = 500",
        ]
        if PROMETHEUS_PLUGIN in self.plugins:
            lines += ["prometheus.tcp.ip = 127.0.0.1", f"prometheus.tcp.port = {self.prometheus_port}"]
        return "\n".join(lines) + "\n"

    def launch(self) -> None:
        """Start the node's process (data kept from any earlier run) without waiting for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(self.configuration())
        (self.directory / "rabbitmq-env.conf").write_text("")
        (self.directory / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        if self.cookie is not None:
            cookie = self.directory / ".erlang.cookie"
            if not cookie.exists() or cookie.read_text() != self.cookie:
                cookie.unlink(missing_ok=True)
                cookie.write_text(self.cookie)
                cookie.chmod(0o400)  # Erlang refuses a cookie others may read
        self.server.start([str(self.scripts / "rabbitmq-server")], self.environment(),
                          cwd=self.directory)

    def start(self) -> None:
        """Start the node and wait until it has booted."""
        self.launch()
        self.wait_ready()

    def wait_ready(self, timeout: float = RABBITMQ_BOOT_SECONDS) -> None:
        # await_startup fails at once while the node has not registered with epmd: poll it.
        self.server.wait_until(
            lambda: self.ctl("await_startup", "--timeout", "20", check=False, timeout=25) is not None,
            timeout, "booted",
        )
        if PROMETHEUS_PLUGIN in self.plugins:
            self.server.wait_until(lambda: answers(self.metrics_url), timeout, "serving metrics")

    def ctl(self, *arguments: str, check: bool = True, timeout: float = RABBITMQCTL_SECONDS
            ) -> str | None:
        """Run ``rabbitmqctl -n NODE ...``; its output, or None when it failed and not ``check``."""
        done = subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-q", "-n", self.node, *arguments],
            env=self.environment(), capture_output=True, timeout=timeout, check=False,
        )
        if done.returncode != 0:
            if check:
                raise RuntimeError(f"rabbitmqctl {' '.join(arguments)}: {done.stderr.decode()}")
            return None
        return done.stdout.decode()

    def queue_depths(self) -> dict[str, QueueDepth]:
        """Every queue of the node: messages ready and delivered but not yet acknowledged
        (from the node's statistics: up to ``collect_statistics_interval`` old)."""
        output = self.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged",
                          "--no-table-headers")
        depths = {}
        for line in (output or "").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                depths[parts[0]] = QueueDepth(int(parts[1]), int(parts[2]))
        return depths

    # -- resource alarms ------------------------------------------------------------------

    def raise_alarm(self, resource: str, timeout: float = ALARM_SECONDS) -> None:
        """Drive the node into its ``memory`` or ``disk`` alarm and wait until it is in effect:
        RabbitMQ then blocks every connection that publishes."""
        self.provoke_alarm(resource)
        self.wait_alarm(resource, True, timeout)

    def clear_alarm(self, resource: str, timeout: float = ALARM_SECONDS) -> None:
        """Put RabbitMQ's default back for ``resource`` and wait until its alarm has cleared."""
        self.restore_alarm_limit(resource)
        self.wait_alarm(resource, False, timeout)

    def provoke_alarm(self, resource: str) -> None:
        """A memory watermark of almost nothing, or a disk free limit of twice the disk."""
        if resource == "memory":
            self.ctl("set_vm_memory_high_watermark", MEMORY_ALARM_WATERMARK)
        elif resource == "disk":
            self.ctl("set_disk_free_limit", str(2 * shutil.disk_usage(self.directory).total))
        else:
            raise ValueError(f"no such alarm: {resource!r}, one of {ALARMS}")

    def restore_alarm_limit(self, resource: str) -> None:
        """RabbitMQ's default memory watermark or disk free limit; the node re-checks at once."""
        if resource == "memory":
            self.ctl("set_vm_memory_high_watermark", DEFAULT_MEMORY_WATERMARK)
        elif resource == "disk":
            self.ctl("set_disk_free_limit", DEFAULT_DISK_FREE_LIMIT)
        else:
            raise ValueError(f"no such alarm: {resource!r}, one of {ALARMS}")

    def wait_alarm(self, resource: str, present: bool, timeout: float = ALARM_SECONDS) -> None:
        self.server.wait_until(lambda: (resource in self.alarms()) is present, timeout,
                               f"{'in' if present else 'out of'} its {resource} alarm")

    def alarms(self) -> set[str]:
        """The resource alarms in effect on this node (``memory``, ``disk``)."""
        output = self.ctl("eval", "rabbit_alarm:get_alarms().") or ""
        return {resource for resource in ALARMS if f"{{resource_limit,{resource}," in output}

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node as an operator would (``rabbitmqctl stop``); kill it if that hangs."""
        if self.running:
            try:
                self.ctl("stop", check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.server.stop(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the node: its whole process group (the start script, the Erlang VM and its
        helpers), as a crashed machine would lose it; no goodbye to its peers or clients."""
        process = self.server.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        self.server.stop()  # reaps the start script

    def close(self) -> None:
        """Stop the node and close its log (the caller removes its data). Idempotent."""
        try:
            self.stop()
        finally:
            self.server.close()


@dataclass(frozen=True)
class QueueReplicas:
    """Where a quorum queue lives: its leader's node and its members (those online too)."""

    name: str
    leader: str
    members: tuple[str, ...]
    online: tuple[str, ...]

    @property
    def fully_replicated(self) -> bool:
        return bool(self.members) and set(self.online) == set(self.members)


T = TypeVar("T")


class RabbitCluster:
    """Throwaway RabbitMQ nodes (three by default) joined into one cluster on loopback.

    Nodes boot in parallel, then every node but the first joins the first (``stop_app``,
    ``reset``, ``join_cluster``, ``start_app``). A node may be SIGKILLed (``kill``) and started
    again (``restart``): it keeps its data, so it rejoins by itself, and its quorum queue
    members catch up with their leaders. Every wait is bounded.
    """

    def __init__(self, directory: Path, *, size: int = 3,
                 scripts: Path | None = None) -> None:
        tag = uuid.uuid4().hex[:6]
        cookie = secrets.token_hex(20)
        found = scripts or installed_rabbitmq_scripts()
        self.directory = directory
        self.nodes = [
            RabbitNode(directory / f"node-{index}", scripts=found, cookie=cookie,
                       node=f"rabbit-cluster-{tag}-{index}@localhost")
            for index in range(1, size + 1)
        ]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = RABBITMQ_BOOT_SECONDS) -> None:
        """Boot every node at once, then join them into one cluster."""
        for node in self.nodes:
            node.launch()
        _each(self.nodes, lambda node: node.wait_ready(timeout))
        seed, joining = self.nodes[0], self.nodes[1:]
        _each(joining, lambda node: (node.ctl("stop_app"), node.ctl("reset")))
        for node in joining:  # one at a time: each join changes the cluster's schema
            node.ctl("join_cluster", seed.node)
        _each(joining, lambda node: node.ctl("start_app"))
        self.wait_running(self.nodes, timeout)

    def close(self) -> None:
        """Stop every node (at once) and close their logs. Idempotent."""
        _each(self.nodes, RabbitNode.close)

    def __enter__(self) -> RabbitCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------

    @property
    def amqp_urls(self) -> str:
        """Every node's AMQP URL, comma-separated: the platform's ``AMQP_URL``."""
        return ",".join(node.amqp_url for node in self.nodes)

    def by_name(self, name: str) -> RabbitNode:
        for node in self.nodes:
            if node.node == name:
                return node
        raise KeyError(name)

    def by_port(self, port: int) -> RabbitNode:
        for node in self.nodes:
            if node.amqp_port == port:
                return node
        raise KeyError(port)

    def running_nodes(self) -> list[RabbitNode]:
        return [node for node in self.nodes if node.running]

    def any_running(self, *, besides: RabbitNode | None = None) -> RabbitNode:
        for node in self.running_nodes():
            if node is not besides:
                return node
        raise RuntimeError("no node of the cluster is running")

    # -- what the cluster says ------------------------------------------------------------

    def cluster_members_running(self, *, asked: RabbitNode | None = None) -> set[str]:
        """The node names the cluster counts as running (asked of one running node)."""
        answer = self._json(asked or self.any_running(), "cluster_status")
        if not isinstance(answer, dict):
            return set()
        return {str(name) for name in answer.get("running_nodes", [])}

    def replicas(self, queues: Iterable[str] | None = None, *,
                 asked: RabbitNode | None = None) -> dict[str, QueueReplicas]:
        """Leader and members of every quorum queue (or those named), by queue name."""
        wanted = None if queues is None else set(queues)
        rows = self._json(asked or self.any_running(), "list_queues", "name", "type", "leader",
                          "members", "online")
        found = {}
        for row in rows if isinstance(rows, list) else []:
            if row.get("type") != "quorum" or (wanted is not None and row["name"] not in wanted):
                continue
            found[row["name"]] = QueueReplicas(
                row["name"], str(row.get("leader") or ""), tuple(map(str, row.get("members") or ())),
                tuple(map(str, row.get("online") or ())))
        return found

    def leaders(self, queues: Iterable[str] | None = None) -> dict[str, RabbitNode]:
        """The node hosting each quorum queue's leader."""
        return {name: self.by_name(replica.leader)
                for name, replica in self.replicas(queues).items() if replica.leader}

    def connections(self, *, asked: RabbitNode | None = None) -> list[tuple[str, RabbitNode]]:
        """Every client connection of the cluster: its client-given name and the node it is on
        (told apart by the node's AMQP port, the connection's server side)."""
        rows = self._json(asked or self.any_running(), "list_connections", "port",
                          "client_properties")
        found = []
        for row in rows if isinstance(rows, list) else []:
            properties = _client_properties(row.get("client_properties"))
            found.append((str(properties.get("connection_name", "")), self.by_port(int(row["port"]))))
        return found

    def move_connections_to(self, node: RabbitNode, *, at_least: int,
                            timeout: float = CLUSTER_SECONDS) -> list[tuple[str, RabbitNode]]:
        """Close every client connection that is not on ``node`` until ``at_least`` are and
        none is elsewhere: clients that fail over move on to their next node by themselves,
        so each lands on ``node`` within one round of its list. The connections, at the end."""
        deadline = time.monotonic() + timeout
        while True:
            # The table form: close_connection takes its pids (JSON's "#PID<...>" it refuses).
            output = node.ctl("list_connections", "pid", "port", "--no-table-headers", check=False)
            rows = [line.split("\t") for line in (output or "").splitlines() if "\t" in line]
            elsewhere = [pid for pid, port in rows if int(port) != node.amqp_port]
            if not elsewhere and len(rows) >= at_least:
                return self.connections(asked=node)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows) - len(elsewhere)} connections on {node.node}, "
                                   f"{len(elsewhere)} elsewhere after {timeout:.0f} s")
            for pid in elsewhere:
                node.ctl("close_connection", pid, "moved by the tests", check=False)
            time.sleep(POLL_SECONDS * 2)

    # -- faults and recovery --------------------------------------------------------------

    def kill(self, node: RabbitNode) -> None:
        """SIGKILL one node, then wait until the others see it gone."""
        node.kill()
        others = [other for other in self.nodes if other is not node and other.running]
        if others:
            _wait(lambda: node.node not in self.cluster_members_running(asked=others[0]),
                  CLUSTER_SECONDS, f"{node.node} counted as down")

    def restart(self, node: RabbitNode, queues: Iterable[str] = (),
                timeout: float = CLUSTER_SECONDS) -> float:
        """Start a stopped or killed node again, wait until it runs in the cluster and every
        queue named has all its members online again; how long it took, in seconds."""
        started = time.monotonic()
        node.stop()  # reaps what a kill left
        node.launch()
        node.wait_ready(timeout)
        self.wait_running(self.nodes, timeout)
        self.wait_replicated(queues, timeout)
        return time.monotonic() - started

    def wait_running(self, nodes: Iterable[RabbitNode], timeout: float = CLUSTER_SECONDS) -> None:
        expected = {node.node for node in nodes}
        _wait(lambda: expected <= self.cluster_members_running(), timeout,
              f"nodes {sorted(expected)} running in the cluster")

    def wait_replicated(self, queues: Iterable[str], timeout: float = CLUSTER_SECONDS
                        ) -> dict[str, QueueReplicas]:
        """Wait until every queue named has all of its members online."""
        wanted = set(queues)
        found: dict[str, QueueReplicas] = {}

        def replicated() -> bool:
            nonlocal found
            found = self.replicas(wanted)
            return found.keys() >= wanted and all(r.fully_replicated for r in found.values())

        _wait(replicated, timeout, f"queues {sorted(wanted)} fully replicated")
        return found

    def quorum_critical(self, node: RabbitNode) -> bool:
        """Whether stopping ``node`` would leave some quorum queue without a majority."""
        done = subprocess.run(
            [str(node.scripts / "rabbitmq-queues"), "-q", "-n", node.node,
             "check_if_node_is_quorum_critical"],
            env=node.environment(), capture_output=True, timeout=RABBITMQCTL_SECONDS, check=False)
        return done.returncode != 0

    def _json(self, node: RabbitNode, *arguments: str) -> Any:
        output = node.ctl(*arguments, "--formatter", "json", check=False)
        if not output:
            return None
        try:
            return json.loads(output)
        except json.JSONDecodeError:
            return None


def _client_properties(raw: Any) -> dict[str, Any]:
    """rabbitmqctl's JSON of client properties: a list of [name, type, value] triples."""
    if isinstance(raw, dict):
        return raw
    found = {}
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, list) and len(entry) == 3:
            found[str(entry[0])] = entry[2]
    return found


def _each(nodes: list[RabbitNode], action: Callable[[RabbitNode], T]) -> list[T]:
    """Run ``action`` on every node at once (each waits for its own process); first error raised."""
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return list(pool.map(action, nodes))


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
