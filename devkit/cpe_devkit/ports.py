"""Free loopback ports for the processes the tests start."""

from __future__ import annotations

import socket

# rabbitmqctl and the other RabbitMQ CLI tools open their own Erlang distribution listener on a
# port from this range (rabbitmq-env's RABBITMQ_CTL_DIST_PORT_MIN..MAX): nothing else may use it.
CLI_DIST_PORTS = range(35672, 35683)


def _probe() -> socket.socket:
    """A socket that binds as the servers do (Sanic, the metrics servers): with SO_REUSEADDR, so
    that a port whose last connection is in TIME_WAIT counts as free. After a run of 15,000
    calls the worker's closed connections hold that many loopback ports in TIME_WAIT for 60 s,
    and a plain bind refused them."""
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


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports (process ``i`` serves on ``base + i``)."""
    for _ in range(100):
        base = free_port()
        if base + count < 65536 and all(port_is_free(base + i) for i in range(1, count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")
