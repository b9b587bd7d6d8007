"""A redis-server of the fault tests' own, which they may stop and restart (the RabbitMQ node
they restart is ``rabbit_node.RabbitNode``).

It is not the machine's: it has its own port and directory, and keeps its data across a restart
in an append-only file fsynced on every write, so a restart is the honest one a production
store goes through.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .ports import free_port
from .processes import Background


@dataclass
class RedisServer:
    """A redis-server with append-only persistence, fsynced on every write."""

    directory: Path
    port: int = field(default_factory=free_port)

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
             "--dir", str(self.directory), "--daemonize", "no"],
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        self.server.stop(sig, timeout)

    def close(self) -> None:
        self.server.close()
