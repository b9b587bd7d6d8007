"""A fault-injecting TCP proxy: the network between two services, broken at run time.

In the spirit of aiormq's proxy-based fault tests and of Toxiproxy's toxics, a ``FaultProxy``
listens on a loopback port of its own (bound to port 0, so no free-port race) and forwards
every connection to one upstream ``host:port``; a client pointed at the proxy's address talks
to the upstream through it, TLS included (bytes pass unchanged, so the host name, and the
certificate, stay ``127.0.0.1``'s). Its toxics, set and cleared at run time:

- ``stall(direction)``: forward nothing, the connections staying open: bytes are **held, not
  dropped** (like Toxiproxy's ``timeout`` toxic with timeout 0), in the proxy's small per-
  direction queue and then in the kernel's socket buffers, and delivered in order at ``heal``;
  an end of stream or a reset is held too. To the client this is a dead network: writes
  succeed until its send buffer fills, nothing comes back, and it notices only by its own
  timeouts or heartbeats. New connections are accepted and stalled alike.
- ``delay(latency, jitter)``: every chunk is delivered ``latency`` ± ``jitter`` seconds after
  it was read (uniform), never before the chunk ahead of it (order preserved).
- ``limit_bandwidth(bytes_per_second)``: forward at most that many bytes a second.
- ``reset(after_bytes)``: every connection, open or new, is reset (RST: ``SO_LINGER`` 0 on both
  sockets) once it has carried ``after_bytes`` more bytes (both directions counted) since the
  toxic was set or since it opened; a chunk is cut at that byte, so the reset lands mid-frame.
  ``after_bytes=0`` resets the open connections now and every new one at accept.
- ``refuse()``: stop listening, so new connections are refused by the kernel
  (``ECONNREFUSED``); open connections go on. ``heal`` listens again on the same port.

``stall``, ``delay`` and ``limit_bandwidth`` apply per direction: ``upstream`` (client to
server), ``downstream`` (server to client) or ``both``. ``heal()`` clears every toxic (and
releases what a stall held). ``stats`` counts connections, bytes and resets for assertions.

The proxy runs in the caller's event loop: a fault test is an async test driving the
platform's processes from outside, so it only has to keep its loop free (blocking calls go to
``asyncio.to_thread``, as the harness already does), and a toxic is a plain call between two
awaits, with no thread hand-over to reason about.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from enum import Enum

CHUNK_BYTES = 64 * 1024
# Chunks read ahead of a held or slowed writer, per direction: past it the proxy stops reading,
# and the bytes wait in the kernel's buffers (a stall holds at most this much in memory).
QUEUE_CHUNKS = 16
# A bandwidth limit forwards in slices of a tenth of a second's worth, so its pace is smooth.
BANDWIDTH_SLICES_PER_SECOND = 10
CONNECT_TIMEOUT_SECONDS = 5.0


class Direction(Enum):
    UPSTREAM = "upstream"  # client to server
    DOWNSTREAM = "downstream"  # server to client
    BOTH = "both"

    def covers(self, direction: Direction) -> bool:
        return self is Direction.BOTH or self is direction


@dataclass
class _Toxics:
    """The toxics of one direction."""

    flowing: asyncio.Event = field(default_factory=asyncio.Event)  # cleared while stalled
    latency_seconds: float = 0.0
    jitter_seconds: float = 0.0
    bytes_per_second: float | None = None

    def __post_init__(self) -> None:
        self.flowing.set()


@dataclass
class ProxyStats:
    """Counts since the proxy started."""

    connections: int = 0  # accepted (and forwarded upstream)
    open: int = 0
    bytes_upstream: int = 0
    bytes_downstream: int = 0
    resets: int = 0  # connections reset by the reset toxic
    upstream_failures: int = 0  # accepted connections whose upstream could not be reached


class FaultProxy:
    """One listening port forwarding to ``upstream_host:upstream_port``, with toxics.

    ``async with FaultProxy(host, port) as proxy``; ``proxy.port`` is where clients connect.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, name: str = "proxy",
                 listen_host: str = "127.0.0.1", rng: random.Random | None = None) -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)
        self.host = listen_host
        self.port = 0
        self.stats = ProxyStats()
        self._rng = rng or random.Random()
        self._toxics = {Direction.UPSTREAM: _Toxics(), Direction.DOWNSTREAM: _Toxics()}
        self._reset_after: int | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        # Each connection's handler, held here: asyncio keeps it only through the protocol of a
        # socket, so a handler held up by a stall would otherwise be destroyed while pending.
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen (on a port of the kernel's choice the first time, the same one after)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._stop_listening()
        for link in list(self._links):
            link.close(reset=False)
        for toxics in self._toxics.values():
            toxics.flowing.set()  # lets held pumps see the closed sockets and end
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def __repr__(self) -> str:
        return f"FaultProxy({self.name} {self.host}:{self.port} -> {self.upstream[0]}:{self.upstream[1]})"

    # -- toxics ---------------------------------------------------------------------------

    def stall(self, direction: Direction = Direction.BOTH) -> None:
        """Forward nothing in ``direction``; what arrives is held until ``heal``."""
        for which, toxics in self._toxics.items():
            if direction.covers(which):
                toxics.flowing.clear()

    def delay(self, latency_seconds: float, jitter_seconds: float = 0.0,
              direction: Direction = Direction.BOTH) -> None:
        """Deliver each chunk ``latency`` ± ``jitter`` seconds late (order preserved)."""
        if latency_seconds < 0 or not 0 <= jitter_seconds <= latency_seconds:
            raise ValueError("latency must be >= 0 and jitter between 0 and the latency")
        for which, toxics in self._toxics.items():
            if direction.covers(which):
                toxics.latency_seconds, toxics.jitter_seconds = latency_seconds, jitter_seconds

    def limit_bandwidth(self, bytes_per_second: float,
                        direction: Direction = Direction.BOTH) -> None:
        """Forward at most ``bytes_per_second`` in ``direction`` (per connection)."""
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        for which, toxics in self._toxics.items():
            if direction.covers(which):
                toxics.bytes_per_second = bytes_per_second

    def reset(self, after_bytes: int = 0) -> None:
        """Reset every connection once it has carried ``after_bytes`` more bytes (see the
        module docstring); new connections too, until ``heal``."""
        if after_bytes < 0:
            raise ValueError("after_bytes must be >= 0")
        self._reset_after = after_bytes
        for link in list(self._links):
            link.budget = after_bytes
            if after_bytes == 0:
                self._reset(link)

    async def refuse(self) -> None:
        """Stop listening: new connections are refused; open ones go on."""
        await self._stop_listening()

    async def heal(self) -> None:
        """Clear every toxic: held bytes flow again, new connections are accepted."""
        self._reset_after = None
        for link in self._links:
            link.budget = None
        for toxics in self._toxics.values():
            toxics.latency_seconds = toxics.jitter_seconds = 0.0
            toxics.bytes_per_second = None
            toxics.flowing.set()
        if not self._closed:
            await self.start()

    @property
    def listening(self) -> bool:
        return self._server is not None

    # -- forwarding -----------------------------------------------------------------------

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # Closes the listening socket now; not ``wait_closed``, which (from Python 3.12)
            # would wait for the open connections too.
            server.close()

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            # Cancelled by ``close``: end normally, as asyncio's stream callback asks a finished
            # handler for its exception and would log a cancelled one's as an error.
            if not self._closed:
                raise
        finally:
            self._handlers.discard(handler)

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError):
            self.stats.upstream_failures += 1
            _abort(client_writer)
            return
        link = _Link(client_writer, server_writer, budget=self._reset_after)
        self._links.add(link)
        self.stats.connections += 1
        self.stats.open += 1
        try:
            if link.budget == 0:
                self._reset(link)
                return
            await asyncio.gather(
                self._pump(link, client_reader, server_writer, Direction.UPSTREAM),
                self._pump(link, server_reader, client_writer, Direction.DOWNSTREAM),
            )
        finally:
            link.close(reset=False)
            self._links.discard(link)
            self.stats.open -= 1

    async def _pump(self, link: _Link, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, direction: Direction) -> None:
        """Read from one side and hand chunks, with their due time, to the writer task."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        forwarding = asyncio.create_task(self._forward(link, queue, writer, direction))
        toxics = self._toxics[direction]
        due = 0.0
        try:
            while not link.closed:
                try:
                    chunk = await reader.read(CHUNK_BYTES)
                except OSError:
                    chunk = b""  # a reset from this side: ends the stream like an EOF, in turn
                jitter = self._rng.uniform(-toxics.jitter_seconds, toxics.jitter_seconds)
                due = max(due, time.monotonic() + toxics.latency_seconds + jitter)
                await queue.put((due, chunk))
                if not chunk:
                    break
            await forwarding
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)

    async def _forward(self, link: _Link, queue: asyncio.Queue[tuple[float, bytes]],
                       writer: asyncio.StreamWriter, direction: Direction) -> None:
        toxics = self._toxics[direction]
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await toxics.flowing.wait()
            if link.closed:
                return
            if not chunk:
                # The other side ended its stream: end ours; the link closes once both ended.
                link.ended += 1
                if link.ended == 2 or not _write_eof(writer):
                    link.close(reset=False)
                return
            while chunk:
                size = len(chunk)
                if toxics.bytes_per_second is not None:
                    size = max(1, int(toxics.bytes_per_second / BANDWIDTH_SLICES_PER_SECOND))
                if link.budget is not None:
                    size = min(size, link.budget)
                piece, chunk = chunk[:size], chunk[size:]
                if piece:
                    if not await self._write(link, writer, piece, direction):
                        return
                if link.budget is not None:
                    link.budget -= len(piece)
                    if link.budget <= 0:
                        self._reset(link)
                        return
                if toxics.bytes_per_second is not None:
                    await asyncio.sleep(len(piece) / toxics.bytes_per_second)
                await toxics.flowing.wait()

    async def _write(self, link: _Link, writer: asyncio.StreamWriter, piece: bytes,
                     direction: Direction) -> bool:
        try:
            writer.write(piece)
            await writer.drain()
        except (OSError, RuntimeError):
            link.close(reset=True)  # the peer is gone: what a router passes on is a reset
            return False
        if direction is Direction.UPSTREAM:
            self.stats.bytes_upstream += len(piece)
        else:
            self.stats.bytes_downstream += len(piece)
        return True

    def _reset(self, link: _Link) -> None:
        if not link.closed:
            self.stats.resets += 1
        link.close(reset=True)


class _Link:
    """One proxied connection: the client's socket and the upstream's."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter, *,
                 budget: int | None) -> None:
        self.client = client
        self.server = server
        self.budget = budget  # bytes left before the reset toxic resets it; None: no toxic
        self.ended = 0  # directions whose stream ended
        self.closed = False

    def close(self, *, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.server):
            if reset:
                _abort(writer)
            else:
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: ``SO_LINGER`` on with a zero timeout, then close at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _write_eof(writer: asyncio.StreamWriter) -> bool:
    try:
        if writer.can_write_eof():
            writer.write_eof()
            return True
    except (OSError, RuntimeError):
        pass
    return False
