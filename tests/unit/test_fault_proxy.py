"""The fault proxy forwards bytes unchanged, and each toxic breaks the network as it says:
against real loopback servers (an echo server and a sink), no mocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from cpe_devkit.fault_proxy import Direction, FaultProxy

pytestmark = pytest.mark.timeout(30)
QUIET_SECONDS = 0.5  # how long "nothing arrives" is watched for


@dataclass
class Upstream:
    """A loopback server: echoes (``echo``) or only keeps what it receives; counts both."""

    echo: bool = True
    received: bytearray = field(default_factory=bytearray)
    ended: list[str] = field(default_factory=list)  # "eof" or "reset", per connection
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                self.received += chunk
                if self.echo:
                    writer.write(chunk)
                    await writer.drain()
            self.ended.append("eof")
        except ConnectionResetError:
            self.ended.append("reset")
        finally:
            writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def echo() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    await upstream.start()
    yield upstream
    upstream.close()


@pytest.fixture
async def sink() -> AsyncIterator[Upstream]:
    upstream = Upstream(echo=False)
    await upstream.start()
    yield upstream
    upstream.close()


@pytest.fixture
async def proxy_of(echo: Upstream) -> AsyncIterator[FaultProxy]:
    assert echo.server is not None
    async with FaultProxy("127.0.0.1", echo.server.sockets[0].getsockname()[1]) as proxy:
        yield proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(proxy.host, proxy.port)


async def read_exactly(reader: asyncio.StreamReader, count: int, timeout: float = 5) -> bytes:
    return await asyncio.wait_for(reader.readexactly(count), timeout)


async def nothing_arrives(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), QUIET_SECONDS)
    except TimeoutError:
        return True
    return False


async def test_bytes_pass_unchanged_both_ways_and_are_counted(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    payload = bytes(range(256)) * 400  # 100 KiB: several chunks
    writer.write(payload)
    assert await read_exactly(reader, len(payload)) == payload
    writer.close()
    assert proxy_of.stats.connections == 1
    assert (proxy_of.stats.bytes_upstream, proxy_of.stats.bytes_downstream) == (len(payload),) * 2


async def test_a_stall_forwards_nothing_and_keeps_the_connection_open(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.stall()
    writer.write(b"held")
    await writer.drain()
    assert await nothing_arrives(reader)
    assert not reader.at_eof()
    assert proxy_of.stats.bytes_upstream == 0
    writer.close()


async def test_a_healed_stall_delivers_the_held_bytes_in_order(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.stall()
    for index in range(100):
        writer.write(b"%04d" % index)
    await writer.drain()
    assert await nothing_arrives(reader)
    await proxy_of.heal()
    assert await read_exactly(reader, 400) == b"".join(b"%04d" % index for index in range(100))
    writer.close()


async def test_a_stall_holds_the_end_of_the_stream_too(sink: Upstream) -> None:
    assert sink.server is not None
    async with FaultProxy("127.0.0.1", sink.server.sockets[0].getsockname()[1]) as proxy:
        _, writer = await connect(proxy)
        proxy.stall()
        writer.write(b"last words")
        writer.write_eof()
        await asyncio.sleep(QUIET_SECONDS)
        assert (bytes(sink.received), sink.ended) == (b"", [])
        await proxy.heal()
        await asyncio.sleep(QUIET_SECONDS)
        assert (bytes(sink.received), sink.ended) == (b"last words", ["eof"])
        writer.close()


async def test_a_downstream_stall_lets_requests_reach_the_server_but_no_answer_back(
    proxy_of: FaultProxy, echo: Upstream
) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.stall(Direction.DOWNSTREAM)
    writer.write(b"ping")
    assert await nothing_arrives(reader)
    assert bytes(echo.received) == b"ping"
    await proxy_of.heal()
    assert await read_exactly(reader, 4) == b"ping"
    writer.close()


async def test_new_connections_are_stalled_too(proxy_of: FaultProxy) -> None:
    proxy_of.stall()
    reader, writer = await connect(proxy_of)
    writer.write(b"hello")
    assert await nothing_arrives(reader)
    await proxy_of.heal()
    assert await read_exactly(reader, 5) == b"hello"
    writer.close()


async def test_latency_delays_every_answer_by_at_least_the_latency_less_the_jitter(
    proxy_of: FaultProxy,
) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.delay(0.3, 0.1, Direction.UPSTREAM)
    for _ in range(3):
        sent = time.monotonic()
        writer.write(b"x")
        await read_exactly(reader, 1)
        assert time.monotonic() - sent >= 0.2
    writer.close()


async def test_jitter_never_reorders_the_bytes(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.delay(0.05, 0.05)
    for index in range(200):
        writer.write(b"%04d" % index)
        await asyncio.sleep(0.001)  # separate chunks, each with its own jitter
    assert await read_exactly(reader, 800) == b"".join(b"%04d" % index for index in range(200))
    writer.close()


async def test_a_bandwidth_limit_paces_the_bytes(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    proxy_of.limit_bandwidth(20_000, Direction.UPSTREAM)
    started = time.monotonic()
    writer.write(b"b" * 30_000)
    assert await read_exactly(reader, 30_000, timeout=10) == b"b" * 30_000
    assert time.monotonic() - started >= 1.0  # 30 kB at 20 kB/s: 1.5 s, less one slice
    writer.close()


async def test_a_reset_after_some_bytes_cuts_the_stream_there_and_resets_both_sides(
    sink: Upstream,
) -> None:
    assert sink.server is not None
    async with FaultProxy("127.0.0.1", sink.server.sockets[0].getsockname()[1]) as proxy:
        reader, writer = await connect(proxy)
        proxy.reset(after_bytes=1000)
        writer.write(b"r" * 10_000)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 5)
        await asyncio.sleep(0.2)
        assert bytes(sink.received) == b"r" * 1000
        assert sink.ended == ["reset"]
        assert (proxy.stats.resets, proxy.stats.open) == (1, 0)
        writer.close()


async def test_a_reset_now_resets_open_connections_and_every_new_one_until_healed(
    proxy_of: FaultProxy,
) -> None:
    reader, writer = await connect(proxy_of)
    writer.write(b"a")
    await read_exactly(reader, 1)
    proxy_of.reset()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    writer.close()
    reader, writer = await connect(proxy_of)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5)
    writer.close()
    await proxy_of.heal()
    reader, writer = await connect(proxy_of)
    writer.write(b"b")
    assert await read_exactly(reader, 1) == b"b"
    writer.close()
    assert proxy_of.stats.resets == 2


async def test_refusing_refuses_new_connections_but_open_ones_go_on(proxy_of: FaultProxy) -> None:
    reader, writer = await connect(proxy_of)
    port = proxy_of.port
    await proxy_of.refuse()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy_of)
    writer.write(b"still")
    assert await read_exactly(reader, 5) == b"still"
    await proxy_of.heal()
    assert proxy_of.port == port
    reader2, writer2 = await connect(proxy_of)
    writer2.write(b"again")
    assert await read_exactly(reader2, 5) == b"again"
    writer.close()
    writer2.close()


async def test_an_unreachable_upstream_resets_the_client(echo: Upstream) -> None:
    assert echo.server is not None
    port = echo.server.sockets[0].getsockname()[1]
    echo.close()
    await echo.server.wait_closed()
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 5)
        writer.close()
        assert (proxy.stats.upstream_failures, proxy.stats.connections) == (1, 0)


async def test_a_toxic_out_of_range_is_refused() -> None:
    proxy = FaultProxy("127.0.0.1", 1)
    with pytest.raises(ValueError, match="jitter"):
        proxy.delay(0.1, 0.2)
    with pytest.raises(ValueError, match="bytes_per_second"):
        proxy.limit_bandwidth(0)
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.reset(-1)


async def test_closing_the_proxy_ends_even_stalled_connections(echo: Upstream) -> None:
    assert echo.server is not None
    proxy = FaultProxy("127.0.0.1", echo.server.sockets[0].getsockname()[1])
    await proxy.start()
    reader, writer = await connect(proxy)
    proxy.stall()
    writer.write(b"held")
    await asyncio.sleep(0.1)
    await proxy.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert (proxy.stats.open, proxy.listening) == (0, False)
    writer.close()
