"""Free loopback ports for the launched processes: a port counts as free when a server binding
as ours do (SO_REUSEADDR) could take it, so the TIME_WAIT left by a run's closed connections
does not make every port look taken."""

from __future__ import annotations

import socket

from cpe_devkit.ports import free_port, port_is_free


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
