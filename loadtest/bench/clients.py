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
from collections.abc import Sequence

import aiohttp

from cpe_devkit.client import create_path, request_body, status_path

from .jobs import ClientJob, ClientResult, JobKind

BODY = json.dumps(request_body("bench-secret")).encode()
HEADERS = {"Content-Type": "application/json"}
OPEN_LOOP_DRAIN_SECONDS = 120


def run_clients(jobs: Sequence[ClientJob]) -> list[ClientResult]:
    """Run each job in a process of its own (spawned: no state inherited) and wait for all."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(jobs)) as pool:
        return pool.map(run_client, jobs)


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
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        # Open the keep-alive connections before the clock starts.
        async def warm() -> None:
            async with session.get(f"{job.base_url}/health") as response:
                await response.read()

        await asyncio.gather(*(warm() for _ in range(job.concurrency)), return_exceptions=True)
        await asyncio.sleep(max(job.start_at - time.time(), 0))
        started_cpu = time.process_time()
        if job.kind in (JobKind.CREATE, JobKind.STATUS):
            await _closed_loop(session, job, result)
        elif job.kind is JobKind.SUBMIT:
            await _submit(session, job, result)
        else:
            await _open_loop(session, job, result)
        result.cpu_seconds = time.process_time() - started_cpu
    return result


async def _create(session: aiohttp.ClientSession, job: ClientJob, index: int, result: ClientResult) -> None:
    equipment_id = f"BENCH{job.tag}X{index:09d}"
    started = time.perf_counter()
    try:
        async with session.post(f"{job.base_url}{create_path(equipment_id)}", data=BODY,
                                headers=HEADERS) as response:
            body = await response.read()
            status = response.status
    except Exception as error:  # a client-side failure is a figure, not a crash
        result.statuses[type(error).__name__] += 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.statuses[str(status)] += 1
    if status == 200:
        result.tasks.append((equipment_id, json.loads(body)["taskId"]))


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

    async def loop() -> None:
        for index in counter:
            await _create(session, job, index, result)

    result.first = time.time()
    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    result.last = time.time()


async def _open_loop(session: aiohttp.ClientSession, job: ClientJob, result: ClientResult) -> None:
    """Start request i at i / rate seconds, whatever the earlier ones are doing."""
    total = int(job.rate * job.duration)
    pending: set[asyncio.Task[None]] = set()
    origin = time.monotonic()
    result.first = time.time()
    for index in range(total):
        wait = origin + index / job.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.max_lag = max(result.max_lag, -wait)
        request = asyncio.create_task(_create(session, job, index, result))
        pending.add(request)
        request.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=OPEN_LOOP_DRAIN_SECONDS)
    result.last = time.time()
