"""Free loopback ports for the launched processes: a port counts as free when a server binding
as ours do (SO_REUSEADDR) could take it, and ranges of ports come from below the ephemeral
range, which a run's thousands of closed outgoing connections fill with TIME_WAIT."""

from __future__ import annotations

import socket

from cpe_devkit.ports import (
    LOWEST_RANGE_PORT,
    ephemeral_range_start,
    free_port,
    free_port_range,
    port_is_free,
)


def test_a_port_that_is_listened_on_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not port_is_free(server.getsockname()[1])


def test_a_port_whose_last_connection_is_in_time_wait_is_free() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: its end of the port waits in TIME_WAIT
        client.close()
    with socket.socket() as plain:  # what the probe used to do, and why it had to change
        try:
            plain.bind(("127.0.0.1", port))
            plainly_free = True
        except OSError:
            plainly_free = False
    assert not plainly_free
    assert port_is_free(port)


def test_a_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()


def test_a_range_of_ports_is_free_and_below_the_ephemeral_range() -> None:
    """Outgoing connections take ports from the ephemeral range: none of them can take these."""
    base = free_port_range(4)
    assert LOWEST_RANGE_PORT <= base and base + 4 <= ephemeral_range_start()
    assert all(port_is_free(base + i) for i in range(4))
