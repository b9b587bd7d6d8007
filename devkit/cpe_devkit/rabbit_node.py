"""A RabbitMQ node of the tests' own, which they may stop and start again.

It is never the machine's: it has its own node name, ports, Erlang cookie (its HOME is its
directory), configuration, plugins and data. Its data survive a restart (quorum queues and
persistent messages in the directory), so a restart is the honest one a production broker goes
through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_port
from .processes import Background, answers

RABBITMQ_BOOT_SECONDS = 60.0
RABBITMQCTL_SECONDS = 30.0
PROMETHEUS_PLUGIN = "rabbitmq_prometheus"


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

    def __post_init__(self) -> None:
        self.server = Background(f"RabbitMQ node {self.node}", self.directory / "rabbitmq.log")

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

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node as an operator would (``rabbitmqctl stop``); kill it if that hangs."""
        if self.running:
            try:
                self.ctl("stop", check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.server.stop(timeout=timeout)

    def close(self) -> None:
        """Stop the node and close its log (the caller removes its data). Idempotent."""
        try:
            self.stop()
        finally:
            self.server.close()
