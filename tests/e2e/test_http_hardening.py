"""Service B and the stub against clients that break HTTP (issue 12's probe findings 1, 2, 3,
4, 8 and 12): hang-ups, invented methods, short and trickling requests, too many connections,
malformed request lines, bodies where none belong, wrong methods; and against a client that is
still sending a body when it is answered (the lingering close).

Both servers share the plumbing that answers these (``provisioning.serving``,
``.http_protocol``, ``.http_rules``, ``.instrumentation``), so every test runs against both,
as real processes over real TLS, with raw sockets: no HTTP client would send these bytes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cpe_devkit.client import request_body
from cpe_devkit.ports import free_port
from cpe_devkit.probes import Samples, sample_total, scrape
from cpe_devkit.processes import http_get
from cpe_devkit.stack import Stack, throwaway_stack
from provisioning.http_protocol import LINGER_MAX_BYTES, LINGER_QUIET_SECONDS, LINGER_SECONDS
from tests.support.otlp import OtlpReceiver
from tests.support.platforms import e2e_environment

pytestmark = pytest.mark.e2e

REQUEST_TIMEOUT = 1.0  # HTTP_REQUEST_TIMEOUT_SECONDS
DEADLINE = 3.0  # HTTP_REQUEST_DEADLINE_SECONDS
MAX_CONNECTIONS = 16  # HTTP_MAX_CONNECTIONS
MAX_BODY_BYTES = 64 * 1024  # API_MAX_BODY_BYTES and STUB_MAX_BODY_BYTES
# Generous: two cores shared with other test runs. A bound is checked every half timeout.
MARGIN = 6.0
TOLERANCE = 1.0  # past a lingering bound: its check, and a loaded machine
POLL_SECONDS = 0.1
CREATE_PATH = "/api/v1/equipment/cpe/HARDENED01"
REQUESTS = "http_server_requests_total"
STUB_ANSWERS = "equipment_stub_answers_total"
OVERLOADED = {"code": 503, "message": "Service is overloaded, retry later"}
TIMED_OUT = {"code": 408, "message": "Request Timeout"}
TOO_LARGE = {"code": 413, "message": "Request body exceeds the size limit"}
CHUNK = b" " * (16 * 1024)  # one write of a body being uploaded


@dataclass(frozen=True)
class Server:
    """One of the two HTTPS servers of the platform, seen from outside."""

    name: str  # the component: "api" (Service B) or "stub"
    port: int
    metrics_port: int
    log: Path
    ca_file: Path

    def samples(self) -> Samples:
        return scrape(self.metrics_port)

    def requests(self, **labels: str) -> float:
        return sample_total(self.samples(), REQUESTS, labels)

    def server_errors(self) -> float:
        return sum(value for (name, labels), value in self.samples().items()
                   if name == REQUESTS and dict(labels)["status"].startswith("5"))

    def log_size(self) -> int:
        return self.log.stat().st_size

    def errors_logged_since(self, offset: int) -> list[str]:
        with self.log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        return [line for line in lines if _level(line) in ("error", "critical")]


def _level(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return "error" if "Traceback" in line else None  # not ours: count it
    return str(record.get("level")) if isinstance(record, dict) else None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse(raw: bytes) -> Answer:
    assert raw, "the server closed the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body)


# -- the platform ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def otlp() -> AsyncIterator[tuple[OtlpReceiver, int]]:
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield receiver, port
    await runner.cleanup()


@pytest.fixture(scope="module")
def platform(otlp: tuple[OtlpReceiver, int], cert_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Service B and the stub with short bounds (no worker: a task stays pending)."""
    environment = e2e_environment(
        cert_dir,
        HTTP_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
        HTTP_REQUEST_DEADLINE_SECONDS=str(DEADLINE),
        HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        API_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        STUB_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        STUB_DELAY_SECONDS="30",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp[1]}",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    with throwaway_stack(environment, tmp_path_factory.mktemp("hardening"),
                         only=("stub", "api")) as stack:
        yield stack


@pytest.fixture(params=["api", "stub"])
def server(request: pytest.FixtureRequest, platform: Stack) -> Server:
    name = request.param
    variables = {"api": ("API_PORT", "API_METRICS_PORT"), "stub": ("STUB_PORT", "STUB_METRICS_PORT")}
    port, metrics_port = (int(platform.environment[v]) for v in variables[name])
    assert platform.log_dir is not None
    return Server(name, port, metrics_port, platform.log_dir / f"{name}.log", platform.ca_file)


# -- raw TLS --------------------------------------------------------------------------------


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=context,
                                         server_hostname="localhost")


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass  # the server closed first, or the client hangs up mid-handshake of the close


async def exchange(server: Server, raw: bytes, *, timeout: float = MARGIN) -> Answer:
    """Send ``raw`` and read until the server closes the connection."""
    reader, writer = await connect(server)
    try:
        writer.write(raw)
        await writer.drain()
        return parse(await asyncio.wait_for(read_to_close(reader), timeout))
    finally:
        await close(writer)


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except (ConnectionError, ssl.SSLError):
        pass  # a reset after the answer: what counts is what was read
    return data


def create_request(body: bytes | None = None, *, length: int | None = None,
                   connection: str = "keep-alive") -> bytes:
    """A create (the same route on both servers), its head declaring ``length`` bytes."""
    body = json.dumps(request_body()).encode() if body is None else body
    return (f"POST {CREATE_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Connection: {connection}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n").encode() + body


async def eventually(check: Callable[[], bool], what: str, timeout: float = MARGIN) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(POLL_SECONDS)


async def hang_up_after(server: Server, raw: bytes, pause: float = 0.3) -> None:
    _, writer = await connect(server)
    writer.write(raw)
    await writer.drain()
    await asyncio.sleep(pause)
    await close(writer)


# -- finding 1: a hang-up is not a server error ---------------------------------------------


async def test_a_client_hanging_up_mid_body_is_counted_499_and_no_server_error(server: Server) -> None:
    request = create_request()
    before, errors = server.requests(status="499", method="POST"), server.server_errors()
    await hang_up_after(server, request[: len(request) - 10])
    await eventually(lambda: server.requests(status="499", method="POST") == before + 1,
                     "the hang-up counted as 499")
    assert server.server_errors() == errors


async def test_a_client_hanging_up_mid_head_is_counted_499_as_an_unmatched_request(server: Server) -> None:
    before, errors = server.requests(status="499", route="unmatched"), server.server_errors()
    await hang_up_after(server, create_request()[:20])
    await eventually(lambda: server.requests(status="499", route="unmatched") == before + 1,
                     "the hang-up counted as 499")
    assert server.server_errors() == errors


async def test_a_client_hanging_up_while_its_answer_is_worked_on_is_counted_499(
        server: Server) -> None:
    if server.name == "stub":  # the stub works on a configuration for STUB_DELAY_SECONDS
        request = create_request()
    else:  # Service B: a long-poll on a task no worker takes
        created = await exchange(server, create_request(connection="close"))
        assert created.status == 200, created
        task_id = created.json()["taskId"]
        request = (f"GET {CREATE_PATH}/task/{task_id}?wait=20 HTTP/1.1\r\n"
                   f"Host: localhost\r\n\r\n").encode()
    before, errors = server.requests(status="499"), server.server_errors()
    abandoned = sample_total(server.samples(), STUB_ANSWERS, {"answer": "abandoned"})
    await hang_up_after(server, request, pause=1.0)
    await eventually(lambda: server.requests(status="499") == before + 1,
                     "the hang-up counted as 499")
    assert server.server_errors() == errors
    if server.name == "stub":  # and as an abandoned call among its answers, not as invalid
        assert sample_total(server.samples(), STUB_ANSWERS, {"answer": "abandoned"}) == abandoned + 1


# -- finding 2: bounded labels, no unknown method recorded ----------------------------------


async def test_invented_methods_share_one_other_series_and_are_recorded_nowhere(
        server: Server, otlp: tuple[OtlpReceiver, int]) -> None:
    secret = f"SECRET{uuid.uuid4().hex.upper()}"
    methods = [secret, "X" * 7000, "get", *(uuid.uuid4().hex[:31].upper() for _ in range(20))]
    for method in methods:
        answer = await exchange(server, f"{method} /health HTTP/1.1\r\nHost: localhost\r\n"
                                        f"Connection: close\r\n\r\n".encode())
        assert answer.status == 405
    series = {labels for (name, labels) in server.samples() if name == REQUESTS}
    assert {dict(labels)["method"] for labels in series} <= {
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "_OTHER"}
    _, text = http_get(f"http://127.0.0.1:{server.metrics_port}/metrics")
    assert secret.encode() not in text and b"X" * 100 not in text
    spans = otlp[0].spans
    await eventually(lambda: any(s.name == "HTTP unmatched" and '"_OTHER"' in
                                 s.attributes.get("http.request.method", "") for s in spans),
                     "the span of a request with an invented method")
    leaked = [s.name for s in spans
              if secret in s.name or any(secret in value for value in s.attributes.values())]
    assert leaked == []
    assert secret not in server.log.read_text()


# -- finding 3: a short body is a 408 within the request timeout ----------------------------


async def test_a_body_shorter_than_its_content_length_is_answered_408_and_closed(server: Server) -> None:
    request = create_request()
    errors, offset = server.server_errors(), server.log_size()
    started = asyncio.get_running_loop().time()
    answer = await exchange(server, request[:-10], timeout=REQUEST_TIMEOUT + MARGIN)
    waited = asyncio.get_running_loop().time() - started
    assert (answer.status, answer.json()) == (408, TIMED_OUT)
    assert answer.headers["connection"] == "close"
    print(f"{server.name}: 408 for a short body after {waited:.2f}s (timeout {REQUEST_TIMEOUT}s)")
    await eventually(lambda: server.requests(status="408", method="POST") >= 1, "the 408 counted")
    assert server.server_errors() == errors
    assert server.errors_logged_since(offset) == []


# -- finding 4: slowloris ------------------------------------------------------------------


async def trickle(server: Server, head: bytes, pieces: list[bytes], pause: float) -> tuple[Answer, float]:
    """Send ``head``, then one piece every ``pause`` (below the request timeout) until the
    server answers; the answer and how long after the first byte it came."""
    reader, writer = await connect(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        writer.write(head)
        reading = asyncio.ensure_future(read_to_close(reader))
        for piece in pieces:
            done, _ = await asyncio.wait({reading}, timeout=pause)
            if done:
                break
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, ssl.SSLError):
                break
        raw = await asyncio.wait_for(reading, DEADLINE + MARGIN)
        return parse(raw), loop.time() - started
    finally:
        await close(writer)


async def test_a_request_head_trickling_in_is_answered_408_at_the_deadline(server: Server) -> None:
    lines = [f"X-Trickle-{n}: {n}\r\n".encode() for n in range(200)]
    answer, after = await trickle(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n", lines,
                                  pause=REQUEST_TIMEOUT / 4)
    assert (answer.status, answer.json()) == (408, TIMED_OUT)
    assert after < DEADLINE + REQUEST_TIMEOUT + MARGIN
    print(f"{server.name}: slowloris head cut after {after:.2f}s (deadline {DEADLINE}s)")


async def test_a_request_body_trickling_in_is_answered_408_at_the_deadline(server: Server) -> None:
    body = json.dumps(request_body()).encode()
    head = create_request(b"", length=len(body))
    answer, after = await trickle(server, head, [body[i:i + 1] for i in range(len(body))],
                                  pause=REQUEST_TIMEOUT / 4)
    assert (answer.status, answer.json()) == (408, TIMED_OUT)
    assert after < DEADLINE + REQUEST_TIMEOUT + MARGIN
    print(f"{server.name}: slow body cut after {after:.2f}s (deadline {DEADLINE}s)")


async def test_a_handler_working_past_the_deadline_and_the_next_request_are_not_cut(
        platform: Stack) -> None:
    """The deadline bounds receiving a request, not answering it; each request of a kept-alive
    connection has a deadline of its own."""
    service_b = service_b_of(platform)
    created = await exchange(service_b, create_request(connection="close"))
    task_id = created.json()["taskId"]
    reader, writer = await connect(service_b)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        wait = DEADLINE + 2 * REQUEST_TIMEOUT
        writer.write(f"GET {CREATE_PATH}/task/{task_id}?wait={wait} HTTP/1.1\r\n"
                     f"Host: localhost\r\n\r\n".encode())
        polled = parse(await asyncio.wait_for(read_answer(reader), wait + MARGIN))
        assert (polled.status, polled.json()["code"]) == (200, 204)  # still running, not 408
        assert loop.time() - started >= DEADLINE
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert parse(await asyncio.wait_for(read_answer(reader), MARGIN)).status == 200
    finally:
        await close(writer)


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One answer with a Content-Length, on a connection kept alive."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = parse(head).headers["content-length"]
    return head + await reader.readexactly(int(length))


def service_b_of(platform: Stack) -> Server:
    assert platform.log_dir is not None
    return Server("api", int(platform.environment["API_PORT"]),
                  int(platform.environment["API_METRICS_PORT"]),
                  platform.log_dir / "api.log", platform.ca_file)


async def test_connections_past_the_cap_are_refused_503_with_retry_after_until_some_close(
        server: Server) -> None:
    await eventually(lambda: sample_total(server.samples(), "http_server_open_connections") == 0,
                     "the other tests' connections closed")
    refused = sample_total(server.samples(), "http_server_refused_connections_total")
    held = [await connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        await eventually(lambda: sample_total(server.samples(), "http_server_open_connections")
                         == MAX_CONNECTIONS, "the cap's connections open")
        answer = await exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (answer.status, answer.json()) == (503, OVERLOADED)
        assert (answer.headers["retry-after"], answer.headers["connection"]) == ("1", "close")
        assert sample_total(server.samples(), "http_server_refused_connections_total") == refused + 1
    finally:
        for _, writer in held:
            await close(writer)
    await eventually(lambda: sample_total(server.samples(), "http_server_open_connections") == 0,
                     "the held connections closed")
    answer = await exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert answer.status == 200


# -- finding 8: malformed request lines and bodies where none belong ------------------------


@pytest.mark.parametrize("request_line", [
    b"GET health HTTP/1.1", b"GET /hea\tlth HTTP/1.1", b"CONNECT 127.0.0.1:8081 HTTP/1.1",
    b"GET /health HTTP/9.9", b"GET /health",
])
async def test_a_malformed_request_line_is_answered_400_without_an_error_logged(
        server: Server, request_line: bytes) -> None:
    errors, offset = server.server_errors(), server.log_size()
    answer = await exchange(server, request_line + b"\r\nHost: localhost\r\n\r\n")
    assert answer.status == 400
    assert answer.json()["code"] == 400 and answer.json()["message"]
    assert server.server_errors() == errors
    assert server.errors_logged_since(offset) == []


async def test_a_request_head_over_8_kib_is_answered_413_without_an_error_logged(server: Server) -> None:
    offset = server.log_size()
    head = b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + b"X-Filler: " + b"f" * 8200 + b"\r\n\r\n"
    answer = await exchange(server, head)
    assert (answer.status, answer.json()) == (413, {"code": 413,
                                                    "message": "Request header exceeds the size limit"})
    assert server.errors_logged_since(offset) == []


@pytest.mark.parametrize("framing", [b"Content-Length: 5\r\n\r\nhello",
                                     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"])
async def test_a_get_with_a_body_is_answered_400(server: Server, framing: bytes) -> None:
    offset = server.log_size()
    answer = await exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + framing)
    assert (answer.status, answer.json()) == (400, {"code": 400,
                                                    "message": "GET requests must not have a body"})
    assert server.errors_logged_since(offset) == []


async def test_a_get_with_content_length_zero_is_answered_as_any_get(server: Server) -> None:
    offset = server.log_size()
    answer = await exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert answer.status == 200
    assert server.errors_logged_since(offset) == []


# -- finding 12: a 405 says what is allowed -------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "PUT", "GET"])
async def test_a_405_names_the_allowed_methods(server: Server, method: str) -> None:
    answer = await exchange(server, f"{method} /api/v1/equipment/cpe/0 HTTP/1.1\r\n"
                                    f"Host: localhost\r\nConnection: close\r\n\r\n".encode())
    assert answer.status == 405
    assert answer.json()["code"] == 405
    assert answer.headers["allow"] == "POST"


async def test_a_405_on_a_path_two_handlers_share_names_both_methods(platform: Stack) -> None:
    answer = await exchange(service_b_of(platform), f"PUT {CREATE_PATH}/task/{uuid.uuid4()} HTTP/1.1\r\n"
                                       f"Host: localhost\r\nConnection: close\r\n\r\n".encode())
    assert (answer.status, answer.headers["allow"]) == (405, "DELETE, GET")



async def test_a_connection_that_never_starts_its_tls_handshake_is_closed_at_the_deadline(
        server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # plain TCP
    started = asyncio.get_running_loop().time()
    try:
        assert await asyncio.wait_for(read_to_close(reader), DEADLINE + MARGIN) == b""
    finally:
        await close(writer)
    print(f"{server.name}: a silent TCP connection closed after "
          f"{asyncio.get_running_loop().time() - started:.2f}s (deadline {DEADLINE}s)")


# -- the lingering close: an answer before the body reaches a client still sending it ------


async def upload(writer: asyncio.StreamWriter, chunks: int, *, pause: float = 0.0) -> None:
    for _ in range(chunks):
        writer.write(CHUNK)
        await writer.drain()
        await asyncio.sleep(pause)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything up to the server's close; a reset raises, unlike ``read_to_close``."""
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
    return data


async def answered_while_uploading_for_ever(reader: asyncio.StreamReader,
                                           writer: asyncio.StreamWriter) -> Answer:
    """A create declaring a body far over the limit, its first chunk sent: its (early) answer."""
    writer.write(create_request(b"", length=1 << 40))
    await upload(writer, 1)
    return parse(await asyncio.wait_for(read_answer(reader), MARGIN))


async def send_until_closed(writer: asyncio.StreamWriter, *, pause: float) -> int:
    """Body chunks, one every ``pause``, until the server closes: the bytes sent."""
    sent = 0
    deadline = asyncio.get_running_loop().time() + LINGER_SECONDS + MARGIN
    try:
        while asyncio.get_running_loop().time() < deadline:
            writer.write(CHUNK)
            await writer.drain()
            sent += len(CHUNK)
            await asyncio.sleep(pause)
    except (ConnectionError, ssl.SSLError):
        return sent
    raise AssertionError(f"the connection still open {LINGER_SECONDS + MARGIN}s into its body")


async def test_a_body_over_the_limit_uploaded_in_full_before_reading_gets_the_whole_413(
        server: Server) -> None:
    """The classic client (and Locust's): it sends its whole body and only then reads. The 413
    comes from the Content-Length at once; closing then, with the body's bytes unread, would be
    a TCP reset the client sees while uploading, before it reads the answer.

    8 MiB/s, as over a fast network: over loopback, a body this size is all in the socket
    buffers before the server answers, and the reset came only in about 1 run in 20."""
    body_bytes = 4 * MAX_BODY_BYTES
    reader, writer = await connect(server)
    try:
        writer.write(create_request(b"", length=body_bytes))
        await upload(writer, body_bytes // len(CHUNK), pause=0.002)
        answer = parse(await asyncio.wait_for(read_until_closed(reader), MARGIN))
    finally:
        await close(writer)
    assert (answer.status, answer.json()) == (413, TOO_LARGE)
    assert answer.headers["connection"] == "close"
    assert len(answer.body) == int(answer.headers["content-length"])


async def test_a_client_that_stops_sending_its_body_is_closed_once_quiet_after_its_413(
        server: Server) -> None:
    reader, writer = await connect(server)
    loop = asyncio.get_running_loop()
    try:
        writer.write(create_request(b"", length=100 * MAX_BODY_BYTES))
        await upload(writer, 4 * MAX_BODY_BYTES // len(CHUNK))  # of a body 25 times as long
        last_byte = loop.time()
        answer = parse(await asyncio.wait_for(read_until_closed(reader), MARGIN))
        quiet = loop.time() - last_byte
    finally:
        await close(writer)
    assert (answer.status, answer.json()) == (413, TOO_LARGE)
    assert LINGER_QUIET_SECONDS <= quiet < LINGER_SECONDS  # the quiet ended it, not the time
    print(f"{server.name}: closed {quiet:.2f}s after the last byte (quiet {LINGER_QUIET_SECONDS}s)")


async def test_a_client_sending_its_body_for_ever_is_closed_at_the_lingering_time(
        server: Server) -> None:
    reader, writer = await connect(server)
    loop = asyncio.get_running_loop()
    try:
        answer = await answered_while_uploading_for_ever(reader, writer)
        answered = loop.time()
        # 160 KiB/s: never quiet, and far below LINGER_MAX_BYTES within LINGER_SECONDS.
        await send_until_closed(writer, pause=0.1)
        lingered = loop.time() - answered
    finally:
        await close(writer)
    assert (answer.status, answer.json()) == (413, TOO_LARGE)
    assert LINGER_SECONDS - TOLERANCE < lingered < LINGER_SECONDS + TOLERANCE
    print(f"{server.name}: a body sent for ever cut {lingered:.2f}s after its 413 "
          f"(lingering time {LINGER_SECONDS}s)")


async def test_a_client_flooding_its_body_is_closed_after_the_lingering_bytes(server: Server) -> None:
    reader, writer = await connect(server)
    loop = asyncio.get_running_loop()
    try:
        answer = await answered_while_uploading_for_ever(reader, writer)
        answered = loop.time()
        sent = await send_until_closed(writer, pause=0)
        lingered = loop.time() - answered
    finally:
        await close(writer)
    assert (answer.status, answer.json()) == (413, TOO_LARGE)
    assert lingered < LINGER_SECONDS  # the byte bound closed it, not the lingering time
    print(f"{server.name}: a flood cut {lingered:.2f}s after its 413, {sent / 2**20:.1f} MiB sent "
          f"(the server reads at most {LINGER_MAX_BYTES / 2**20:.0f} MiB; the rest in buffers)")


async def test_a_lingering_connection_gives_its_place_to_a_new_one_at_the_cap(server: Server) -> None:
    await eventually(lambda: sample_total(server.samples(), "http_server_open_connections") == 0,
                     "the other tests' connections closed")
    refused = sample_total(server.samples(), "http_server_refused_connections_total")
    reader, writer = await connect(server)
    held = [await connect(server) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        assert (await answered_while_uploading_for_ever(reader, writer)).status == 413
        lingering = asyncio.ensure_future(send_until_closed(writer, pause=0.1))
        await eventually(lambda: sample_total(server.samples(), "http_server_open_connections")
                         == MAX_CONNECTIONS, "the cap's connections open")
        answer = await exchange(server, b"GET /health HTTP/1.1\r\nHost: localhost\r\n"
                                        b"Connection: close\r\n\r\n")
        assert answer.status == 200  # not the 503 of a full process
        await asyncio.wait_for(lingering, MARGIN)
        assert sample_total(server.samples(), "http_server_refused_connections_total") == refused
    finally:
        await close(writer)
        for _, held_writer in held:
            await close(held_writer)
