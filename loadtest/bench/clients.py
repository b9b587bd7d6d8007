"""The load generator: client processes (one core each at most) with aiohttp on uvloop, over
HTTPS keep-alive connections opened before the clock starts. A failed request is a figure
(its exception's name among the statuses), never a crash."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from cpe_devkit.client import create_path, request_body, status_path

from . import waiters
from .jobs import ClientJob, ClientResult, JobKind
from .progress import write_progress

BODY = json.dumps(request_body("bench-secret")).encode()
HEADERS = {"Content-Type": "application/json"}
OPEN_LOOP_DRAIN_SECONDS = 120
PROGRESS_EVERY_SECONDS = 5.0
# Waiters' connections: a long-poll answers within its ?wait=, a stream sends a keep-alive
# comment every SSE_KEEPALIVE_SECONDS (15 s); a read silent for longer is a dead connection.
WAITER_READ_TIMEOUT_SECONDS = 90


def run_clients(jobs: Sequence[ClientJob], progress: Callable[[], None] | None = None,
                every: float = 10.0) -> list[ClientResult]:
    """Run each job in a process of its own (spawned: no state inherited) and wait for all,
    calling ``progress`` every ``every`` seconds meanwhile."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(jobs)) as pool:
        pending = pool.map_async(run_client, jobs)
        while not pending.ready():
            pending.wait(every)
            if progress is not None and not pending.ready():
                progress()
        return pending.get()


def run_client(job: ClientJob) -> ClientResult:
    """Entry point of a client process."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_client(job))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_client(job))


async def _client(job: ClientJob) -> ClientResult:
    context = ssl.create_default_context(cafile=job.ca_file)
    connector = aiohttp.TCPConnector(ssl=context, limit=job.concurrency, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=60)
    result = ClientResult()
    headers = {"Authorization": f"Bearer {job.token}"} if job.token else {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session, \
            _held_session(job, headers) as held:
        # Open the creates' keep-alive connections before the clock starts. A waiter opens its
        # own when its task is created, as a real client would: the handshake is its cost.
        await _warm(session, job.base_url, job.concurrency)
        await asyncio.sleep(max(job.start_at - time.time(), 0))
        started_cpu = time.process_time()
        if job.kind in (JobKind.CREATE, JobKind.STATUS):
            await _closed_loop(session, job, result)
        elif job.kind is JobKind.SUBMIT:
            await _submit(session, job, result)
        elif job.kind is JobKind.SOAK:
            await _open_loop_and_poll(session, job, result)
        elif job.waits:
            await _submit_and_wait(session, held, job, result)
        else:
            await _open_loop(session, job, result)
        result.cpu_seconds = time.process_time() - started_cpu
    return result


def _held_session(job: ClientJob, headers: dict[str, str]) -> aiohttp.ClientSession:
    """The waiters' session: a connection each (no limit), kept alive, and no overall timeout
    (a long-poll or a stream is meant to last)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WAITER_READ_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=job.ca_file), limit=0,
                                     keepalive_timeout=120)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)


async def _warm(session: aiohttp.ClientSession, base_url: str, connections: int) -> None:
    """Open up to ``connections`` keep-alive connections with concurrent health reads."""

    async def one() -> None:
        async with session.get(f"{base_url}/health") as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)


def _body(job: ClientJob) -> bytes:
    if not job.callback_url:
        return BODY
    return json.dumps({**request_body("bench-secret"), "callbackUrl": job.callback_url}).encode()


async def _create(session: aiohttp.ClientSession, job: ClientJob, index: int, result: ClientResult,
                  body: bytes = BODY) -> tuple[str, str] | None:
    """POST one task; (equipment id, task id) when it was created."""
    equipment_id = f"BENCH{job.tag}X{index:09d}"
    started = time.perf_counter()
    try:
        async with session.post(f"{job.base_url}{create_path(equipment_id)}", data=body,
                                headers=HEADERS) as response:
            answer = await response.read()
            status = response.status
    except Exception as error:  # a client-side failure is a figure, not a crash
        result.statuses[type(error).__name__] += 1
        return None
    result.latencies.append(time.perf_counter() - started)
    result.statuses[str(status)] += 1
    if status != 200:
        return None
    created = (equipment_id, str(json.loads(answer)["taskId"]))
    result.tasks.append(created)
    return created


async def _status(session: aiohttp.ClientSession, job: ClientJob, rng: random.Random,
                  result: ClientResult) -> None:
    equipment_id, task_id = rng.choice(job.tasks)
    started = time.perf_counter()
    try:
        async with session.get(f"{job.base_url}{status_path(equipment_id, task_id)}") as response:
            await response.read()
            status = response.status
    except Exception as error:
        result.statuses[type(error).__name__] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.statuses[str(status)] += 1


async def _closed_loop(session: aiohttp.ClientSession, job: ClientJob, result: ClientResult) -> None:
    end = time.monotonic() + job.duration
    counter = iter(range(10**9))
    rng = random.Random(job.tag)

    async def loop() -> None:
        while time.monotonic() < end:
            if job.kind is JobKind.CREATE:
                await _create(session, job, next(counter), result)
            else:
                await _status(session, job, rng, result)

    result.first = time.time()
    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    result.last = time.time()


async def _submit(session: aiohttp.ClientSession, job: ClientJob, result: ClientResult) -> None:
    counter = iter(range(job.count))
    body = _body(job)

    async def loop() -> None:
        for index in counter:
            await _create(session, job, index, result, body)

    async with _progress_written(job, result):
        result.first = time.time()
        await asyncio.gather(*(loop() for _ in range(job.concurrency)))
        result.last = time.time()


async def _submit_and_wait(session: aiohttp.ClientSession, held: aiohttp.ClientSession, job: ClientJob,
                           result: ClientResult) -> None:
    """``_submit``, each created task then followed by a waiter of its own; ``last`` is when
    the last create was answered. Long-polls and streams hold a connection each (``held``,
    opened by the waiter); polls share the creates' keep-alive pool, the cheapest polling
    there is for Service B (no idle connections, no handshakes)."""
    waiting: set[asyncio.Task[None]] = set()

    async def wait(equipment_id: str, task_id: str) -> None:
        notice = await _wait(session if job.kind is JobKind.POLL else held, job, equipment_id, task_id,
                             time.time() + job.notice_seconds, result)
        if notice is not None:
            result.notices[task_id] = notice

    counter = iter(range(job.count))

    async def loop() -> None:
        for index in counter:
            if (created := await _create(session, job, index, result)) is not None:
                waiter = asyncio.create_task(wait(*created))
                waiting.add(waiter)
                waiter.add_done_callback(waiting.discard)

    async with _progress_written(job, result):
        result.first = time.time()
        await asyncio.gather(*(loop() for _ in range(job.concurrency)))
        result.last = time.time()
        if waiting:
            await asyncio.wait(set(waiting))


async def _wait(session: aiohttp.ClientSession, job: ClientJob, equipment_id: str, task_id: str,
                deadline_at: float, result: ClientResult) -> waiters.Notice | None:
    if job.kind in (JobKind.POLL, JobKind.SOAK):
        return await waiters.poll(session, job.base_url, equipment_id, task_id, interval=job.wait_seconds,
                                  deadline_at=deadline_at, errors=result.wait_errors)
    if job.kind is JobKind.LONG_POLL:
        return await waiters.long_poll(session, job.base_url, equipment_id, task_id, wait=job.wait_seconds,
                                       deadline_at=deadline_at, errors=result.wait_errors)
    return await waiters.sse(session, job.base_url, task_id, deadline_at=deadline_at,
                             errors=result.wait_errors)


@asynccontextmanager
async def _progress_written(job: ClientJob, result: ClientResult) -> AsyncIterator[None]:
    """The client's counts written every ``PROGRESS_EVERY_SECONDS`` while the block runs, and
    once more at its end."""

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            write_progress(job.progress_file, result)

    reporter = asyncio.create_task(report())
    try:
        yield
    finally:
        reporter.cancel()
    write_progress(job.progress_file, result)


async def _paced(job: ClientJob, result: ClientResult,
                 start: Callable[[int], Coroutine[Any, Any, object]]) -> set[asyncio.Task[object]]:
    """Start ``start(i)`` at i / rate seconds for the job's duration, whatever the earlier
    ones are doing; the ones still running at the end."""
    total = int(job.rate * job.duration)
    pending: set[asyncio.Task[object]] = set()
    origin = time.monotonic()
    result.first = time.time()
    for index in range(total):
        wait = origin + index / job.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.max_lag = max(result.max_lag, -wait)
        request = asyncio.create_task(start(index))
        pending.add(request)
        request.add_done_callback(pending.discard)
    return pending


async def _open_loop(session: aiohttp.ClientSession, job: ClientJob, result: ClientResult) -> None:
    """Start request i at i / rate seconds, whatever the earlier ones are doing."""
    async with _progress_written(job, result):
        pending = await _paced(job, result, lambda index: _create(session, job, index, result))
        if pending:
            await asyncio.wait(pending, timeout=OPEN_LOOP_DRAIN_SECONDS)
        result.last = time.time()


async def _open_loop_and_poll(session: aiohttp.ClientSession, job: ClientJob, result: ClientResult) -> None:
    """``_open_loop``, each created task then followed by a polling waiter of its own over the
    creates' keep-alive pool, as a real client polls its task; ``last`` is when the last create
    was started. Every waiter gives up ``notice_seconds`` after its create was answered."""

    async def create_and_poll(index: int) -> None:
        if (created := await _create(session, job, index, result)) is None:
            return
        equipment_id, task_id = created
        result.created_at[task_id] = time.time()
        notice = await _wait(session, job, equipment_id, task_id, time.time() + job.notice_seconds, result)
        if notice is not None:
            result.notices[task_id] = notice

    async with _progress_written(job, result):
        pending = await _paced(job, result, create_and_poll)
        result.last = time.time()
        if pending:
            await asyncio.wait(pending, timeout=job.notice_seconds + OPEN_LOOP_DRAIN_SECONDS)
