"""The pure parts of the HTTP servers' bounds (``provisioning.http_protocol``,
``provisioning.http_rules``): the connection cap under a file limit, lingering connections at the
cap, when a connection counts as receiving a request, and the methods a 405 names."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sanic import Sanic, empty
from sanic.compat import Header
from sanic.http import Stage

from provisioning.http_protocol import (
    REFUSAL,
    LingeringConnections,
    body_pending,
    connection_cap,
    receiving,
)
from provisioning.http_rules import allowed_methods
from provisioning.open_files import FILE_RESERVE


def test_the_connection_cap_is_as_configured_without_a_file_limit_or_below_it() -> None:
    assert connection_cap(10_000, None) == 10_000
    assert connection_cap(10_000, 1_048_576) == 10_000


def test_the_connection_cap_leaves_the_reserve_of_a_lower_file_limit() -> None:
    assert connection_cap(10_000, 1024) == 1024 - FILE_RESERVE
    assert connection_cap(10_000, FILE_RESERVE) == 1  # never none at all


class Connection:
    """A server connection, as far as the lingering ones' register sees it."""

    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def test_at_the_cap_the_oldest_lingering_connection_is_closed_to_make_room() -> None:
    lingering, (first, second, serving) = LingeringConnections(), (Connection() for _ in range(3))
    connections: set[Any] = {first, second, serving}
    lingering.add(first)  # type: ignore[arg-type]
    lingering.add(second)  # type: ignore[arg-type]
    assert lingering.make_room(connections)
    assert (first.aborted, second.aborted) == (True, False)
    assert connections == {second, serving}  # the cap counts the new connection in its place
    assert lingering.make_room(connections) and second.aborted
    assert not lingering.make_room(connections)  # none left: the new connection is refused
    assert not serving.aborted and connections == {serving}


def test_a_connection_done_lingering_is_not_closed_to_make_room() -> None:
    lingering, done = LingeringConnections(), Connection()
    lingering.add(done)  # type: ignore[arg-type]
    lingering.discard(done)  # type: ignore[arg-type]
    assert not lingering.make_room({done}) and not done.aborted


def test_the_refusal_is_a_complete_503_that_says_when_to_retry_and_closes() -> None:
    head, _, body = REFUSAL.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    assert {b"retry-after: 1", b"connection: close", b"content-length: %d" % len(body)} <= set(lines)
    assert body == b'{"code":503,"message":"Service is overloaded, retry later"}'


def http(stage: Stage, body: object = None, left: int = 0) -> Any:
    return SimpleNamespace(stage=stage, request_body=body, request_bytes_left=left)


@pytest.mark.parametrize(("connection", "expected"), [
    (http(Stage.REQUEST), True),  # the head
    (http(Stage.HANDLER, True, 10), True),  # a body read before the handler
    (http(Stage.HANDLER, "chunked"), True),
    (http(Stage.IDLE, True, 10), True),  # a body drained after the answer
    (http(Stage.HANDLER, True, 0), False),  # Content-Length: 0
    (http(Stage.HANDLER), False),  # the handler works: RESPONSE_TIMEOUT's business
    (http(Stage.RESPONSE), False),
    (http(Stage.IDLE), False),  # between requests: KEEP_ALIVE_TIMEOUT's
])
def test_a_connection_receives_while_a_head_or_body_is_still_to_come(connection: Any, expected: bool) -> None:
    assert receiving(connection) is expected


def test_a_connection_before_its_first_request_receives_nothing() -> None:
    assert not body_pending(SimpleNamespace(stage=Stage.IDLE, request_bytes_left=None))  # type: ignore[arg-type]


def test_a_405_names_every_method_of_the_path_and_only_for_a_path_that_has_routes() -> None:
    app = Sanic(f"limits_{uuid.uuid4().hex}")
    async def handler(request: Any, **_: str) -> Any:
        return empty()

    for method in ("POST", "DELETE"):  # two handlers on one path, as Service B's status route
        app.add_route(handler, "/items/<item>", methods=[method], name=f"items_{method.lower()}")
    app.add_route(handler, "/both", methods=["GET", "PUT"], name="both")  # one handler, two
    app.router.finalize()  # as at server start

    def request(method: str, path: str) -> Any:
        return SimpleNamespace(path=path, method=method, headers=Header({"host": "localhost"}))

    assert allowed_methods(app, request("TRACE", "/items/1")) == ["DELETE", "POST"]
    assert allowed_methods(app, request("BREW", "/both")) == ["GET", "PUT"]
    assert allowed_methods(app, request("POST", "/items/1")) == []  # the route exists: not ours
    assert allowed_methods(app, request("TRACE", "/elsewhere")) == []
