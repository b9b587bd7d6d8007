"""Free loopback ports for the processes the tests start."""

from __future__ import annotations

import random
import socket

# rabbitmqctl and the other RabbitMQ CLI tools open their own Erlang distribution listener on a
# port from this range (rabbitmq-env's RABBITMQ_CTL_DIST_PORT_MIN..MAX): nothing else may use it.
CLI_DIST_PORTS = range(35672, 35683)


PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_RANGE_PORT = 10000  # ranges of ports are sought from here up to the ephemeral range


def _probe() -> socket.socket:
    """A socket that binds as the servers do (Sanic, the metrics servers): with SO_REUSEADDR, so
    that a port whose last connection (a server's) is in TIME_WAIT counts as free."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return probe


def free_port() -> int:
    """A loopback TCP port that is free now and not one the RabbitMQ CLI tools may take."""
    for _ in range(100):
        with _probe() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in CLI_DIST_PORTS:
            return port
    raise RuntimeError("no free port found")


def port_is_free(port: int) -> bool:
    with _probe() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_port_range(path: str = PORT_RANGE_FILE) -> tuple[int, int] | None:
    """The first and last port the kernel gives to outgoing connections; None where the file
    cannot be read."""
    try:
        with open(path) as text:
            low, high = (int(part) for part in text.read().split())
    except (OSError, ValueError):
        return None
    return low, high


def ephemeral_range_start(path: str = PORT_RANGE_FILE) -> int:
    """The first port the kernel gives to outgoing connections (Linux's default 32768)."""
    found = ephemeral_port_range(path)
    return 32768 if found is None else found[0]


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports (process ``i`` serves on ``base + i``).

    Sought below the ephemeral range: there Linux gives odd ports to ``bind(0)`` and even ones to
    ``connect()``, so after a run of 15,000 calls nearly every even port is in TIME_WAIT (of a
    client socket, which no SO_REUSEADDR bind may share) and no two consecutive ports are free."""
    below = ephemeral_range_start()
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(LOWEST_RANGE_PORT, max(below - count, LOWEST_RANGE_PORT + 1))
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found below {below}")
