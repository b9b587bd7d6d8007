"""A RabbitMQ node and a Redis server of the fault tests' own, which they may stop and restart.

Neither is the machine's: the node has its own name, ports, Erlang cookie (its HOME is its
temporary directory) and data; the Redis server its own port and directory. Both keep their
data across a restart (quorum queues and persistent messages in the node's data directory; the
append-only file, fsynced on every write, in Redis's), so a restart is the honest one a
production broker or store goes through. Every wait is bounded; ``stop()`` waits for the
process, kills it when it does not stop in time, and is safe to call twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis
from tests.ports import free_port

RABBITMQ_BOOT_SECONDS = 60.0
RABBITMQCTL_SECONDS = 30.0








def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Poll ``check`` until it holds; fail with the log's tail on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before {what}\n{tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f} s\n{tail(log)}")
        time.sleep(0.2)


def tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def rabbitmq_scripts() -> Path:
    """The RabbitMQ scripts that run as the current user.

    Debian's /usr/sbin wrappers switch to the rabbitmq user, who could not write a temporary
    directory of ours; the scripts they wrap live in /usr/lib/rabbitmq/bin.
    """
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists():
        return debian
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError("rabbitmq-server is not installed")
    return Path(found).parent


@dataclass(frozen=True)
class QueueDepth:
    ready: int
    unacked: int


@dataclass
class RabbitNode:
    """A second RabbitMQ node on loopback, stopped and started again at will."""

    directory: Path
    scripts: Path = field(default_factory=rabbitmq_scripts)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"rabbit-fault-{uuid.uuid4().hex[:8]}@localhost")
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def log_file(self) -> Path:
        return self.directory / "rabbitmq.log"

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            "HOME": str(self.directory),  # the Erlang cookie: ours, shared with our rabbitmqctl
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
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

    def start(self) -> None:
        """Start the node's process (data kept from any earlier run) and wait until it boots."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.node} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        # Queue counts (list_queues) come from statistics emitted every interval: 5 s by
        # default, too stale to read a queue right after a consumer went away.
        (self.directory / "rabbitmq.conf").write_text("collect_statistics_interval = 500\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        (self.directory / "enabled_plugins").write_text("[].\n")  # no plugin: a light node
        if self._log is None:
            self._log = open(self.log_file, "ab")  # closed by close()
        self.process = subprocess.Popen(
            [str(self.scripts / "rabbitmq-server")], env=self.environment(), cwd=self.directory,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = RABBITMQ_BOOT_SECONDS) -> None:
        # await_startup fails at once while the node has not registered with epmd: poll it.
        wait_until(
            lambda: self.ctl("await_startup", "--timeout", "20", check=False, timeout=25) is not None,
            timeout=timeout, what=f"{self.node} booted", process=self.process, log=self.log_file,
        )

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
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                self.ctl("stop", check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)

    def close(self) -> None:
        """Stop the node and close its log (the fixture removes its data). Idempotent."""
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


@dataclass
class RedisServer:
    """A redis-server with append-only persistence, fsynced on every write."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("redis-server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = open(self.log_file, "ab")  # closed by close()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.directory), "--daemonize", "no"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self.answers, timeout=timeout, what="answering PING", process=self.process,
                   log=self.log_file)

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
