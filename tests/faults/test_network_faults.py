"""Fault 5: the network between two services stalls, slows down, resets or refuses.

Every link runs through a fault proxy of its own (``harness.Network``, ``cpe_devkit.fault_proxy``):
Service B to Redis and to RabbitMQ, the worker pool to Redis, to RabbitMQ and to the stub. A
case heals every link, checks the platform is whole, creates tasks at a steady pace, breaks one
link for a few seconds, heals it, and checks:

- every task answered 200 reaches a final, correct state (``completed``: the retry budgets here
  outlast every fault), and nothing is lost;
- Service B answered every create within its bound for the link (``Case.answer_bound``: 200,
  or 500 when it could not store or queue the task; never a hang past it), and a create it
  answered 500 left no record that reads as running;
- a stalled AMQP connection is given up within ``DETECTED_WITHIN_SECONDS`` (aiormq's heartbeat
  bound, below), a stalled Redis call within its socket timeout, a stalled Service A call within
  the call timeout, and retried;
- no process stays wedged: each answers, reconnects and completes a new task after the heal.

It prints, per case, the ledger's figures and: the worst answer during the fault, how long the
first task created after the heal took to complete (``recovery_seconds``) and until every
accepted task was final (``all_final_seconds``), and for a stalled AMQP link the detection time.

The bounds, at these settings:

- *AMQP heartbeats* (aiormq 7.2, ``AMQP_HEARTBEAT_SECONDS`` = h): the client sends its own h in
  ``Connection.TuneOk``, heartbeats every max(1, h // 2) s, and at each of those ticks gives up a
  connection that has received no frame for more than 3 (h + 1) s. So a connection whose peer
  went silent is dropped within 3 (h + 1) + max(1, h // 2) s of the last frame it received:
  10 s for h = 2 (the RabbitMQ server gives up on a silent client after about 2 h itself).
- *A create*, Service B's link to Redis broken: the store's command waits at most
  ``REDIS_TIMEOUT_SECONDS`` for a pooled connection, then each of its 1 + ``COMMAND_RETRIES``
  attempts at most a connect's reads and the command's read (2 x ``REDIS_TIMEOUT_SECONDS``):
  7 s here. Its link to RabbitMQ broken: the publish waits ``PUBLISH_TIMEOUT_SECONDS`` for its
  confirm, and Redis (healthy) adds a second at most: 3 s. The worker pool's links broken: a
  create is not concerned, 1 s. Each bound is checked with ``MARGIN_SECONDS`` on top.

The matrix of every link and every toxic is behind the ``network_matrix`` marker
(``pytest tests/faults/test_network_faults.py -m network_matrix``); the most telling cases,
unmarked, run with the suite. One platform serves every case of a module run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from cpe_devkit.client import Client
from cpe_devkit.fault_proxy import Direction, FaultProxy
from cpe_devkit.rabbit_node import RabbitNode
from cpe_devkit.redis_server import RedisServer
from provisioning.redis_connection import COMMAND_RETRIES

from .harness import FaultPlatform, launch_platform
from .ledger import FINAL, Ledger

HEARTBEAT_SECONDS = 2
REDIS_TIMEOUT_SECONDS = 1.0
PUBLISH_TIMEOUT_SECONDS = 2.0
SERVICE_A_TIMEOUT_SECONDS = 2.0
WORKER_PROCESSES = 2
NETWORK_SETTINGS = {
    "AMQP_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    "REDIS_TIMEOUT_SECONDS": str(REDIS_TIMEOUT_SECONDS),
    "PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_TIMEOUT_SECONDS),
    "SERVICE_A_TIMEOUT_SECONDS": str(SERVICE_A_TIMEOUT_SECONDS),
    # A retry budget longer than any fault here (pauses of at least 0.25, 0.5, 0.5... s).
    "SERVICE_A_ATTEMPTS": "12",
    "SERVICE_A_BACKOFF_SECONDS": "0.5",
    "SERVICE_A_BACKOFF_MAX_SECONDS": "1",
    "STUB_DELAY_SECONDS": "0.3",
    "RECONNECT_MAX_SECONDS": "2",
    "WORKER_PROCESSES": str(WORKER_PROCESSES),
}
DETECTED_WITHIN_SECONDS = 3 * (HEARTBEAT_SECONDS + 1) + max(1, HEARTBEAT_SECONDS // 2)
STORE_CALL_SECONDS = REDIS_TIMEOUT_SECONDS + (1 + COMMAND_RETRIES) * 2 * REDIS_TIMEOUT_SECONDS
HEALTHY_CALLS_SECONDS = 1.0  # what a create's calls to a healthy server take at most here
MARGIN_SECONDS = 3.0  # a busy two-core machine's scheduling, on every bound

LOAD_PER_SECOND = 8
BEFORE_FAULT_SECONDS = 1.0
STALL_SECONDS = 4.0
AMQP_STALL_SECONDS = DETECTED_WITHIN_SECONDS + 1.0  # longer than the detection bound
BRIEF_SECONDS = 3.0  # resets, refusals, latency and bandwidth
WHOLE_WITHIN_SECONDS = 60.0
RETRIES = "provisioning_service_a_retries_total"
SETTLE_SECONDS = 60.0


# -- the cases ------------------------------------------------------------------------------

Inject = Callable[[FaultProxy], Awaitable[None]]


async def stall(proxy: FaultProxy) -> None:
    proxy.stall()


async def stall_upstream(proxy: FaultProxy) -> None:
    proxy.stall(Direction.UPSTREAM)


async def stall_downstream(proxy: FaultProxy) -> None:
    proxy.stall(Direction.DOWNSTREAM)


async def latency(proxy: FaultProxy) -> None:
    # Below the Redis timeout even both ways at its worst (2 x 0.3 s per round trip).
    proxy.delay(0.2, 0.1)


async def bandwidth(proxy: FaultProxy) -> None:
    proxy.limit_bandwidth(4096)


async def reset(proxy: FaultProxy) -> None:
    proxy.reset()


async def reset_mid_frame(proxy: FaultProxy) -> None:
    # Every connection is cut 200 bytes on: inside a frame, and inside every reconnection's
    # handshake (RabbitMQ's Connection.Start alone is longer) until the heal.
    proxy.reset(after_bytes=200)


async def refuse(proxy: FaultProxy) -> None:
    # The server's host gone: open connections reset, new ones refused.
    proxy.reset()
    await proxy.refuse()


@dataclass(frozen=True)
class Toxic:
    name: str
    inject: Inject
    stalls: bool = False


TOXICS = [
    Toxic("stall", stall, stalls=True),
    Toxic("stall_upstream", stall_upstream, stalls=True),
    Toxic("stall_downstream", stall_downstream, stalls=True),
    Toxic("latency", latency),
    Toxic("bandwidth", bandwidth),
    Toxic("reset", reset),
    Toxic("reset_mid_frame", reset_mid_frame),
    Toxic("refuse", refuse),
]
LINKS = ["api-redis", "api-rabbitmq", "worker-redis", "worker-rabbitmq", "worker-stub"]
# The suite's cases: heartbeats on both AMQP links, socket timeouts on Redis, the call timeout
# on Service A, a reset inside a frame, latency that costs time but no answer, a refusal.
IN_CI = {
    ("api-rabbitmq", "stall"), ("worker-rabbitmq", "stall"), ("api-redis", "stall"),
    ("worker-stub", "stall"), ("worker-rabbitmq", "reset_mid_frame"),
    ("api-redis", "latency"), ("worker-redis", "refuse"),
}


@dataclass(frozen=True)
class Case:
    link: str
    toxic: Toxic

    @property
    def component(self) -> str:
        return self.link.split("-")[0]

    @property
    def amqp(self) -> bool:
        return self.link.endswith("rabbitmq")

    @property
    def answer_bound(self) -> float:
        """The longest a create may wait for its answer while this link is broken."""
        if self.link == "api-redis":
            return STORE_CALL_SECONDS
        if self.link == "api-rabbitmq":
            return PUBLISH_TIMEOUT_SECONDS + HEALTHY_CALLS_SECONDS
        return HEALTHY_CALLS_SECONDS

    @property
    def seconds(self) -> float:
        if self.toxic.stalls:
            return AMQP_STALL_SECONDS if self.amqp else STALL_SECONDS
        return BRIEF_SECONDS


def cases() -> list[object]:
    found: list[object] = []
    for link in LINKS:
        for toxic in TOXICS:
            marks: list[pytest.MarkDecorator] = []
            if (link, toxic.name) not in IN_CI:
                marks.append(pytest.mark.network_matrix)
            found.append(pytest.param(Case(link, toxic), id=f"{link}-{toxic.name}", marks=marks))
    return found


# -- the load -------------------------------------------------------------------------------

@dataclass
class TimedLoad:
    """Creates at a steady pace through the ledger, each one's answer time kept."""

    client: Client
    ledger: Ledger
    answers: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    hung: int = 0  # creates still unanswered WHOLE_WITHIN_SECONDS after the load stopped

    async def run(self, stop: asyncio.Event) -> None:
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            task = asyncio.create_task(self._one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            try:
                await asyncio.wait_for(stop.wait(), 1 / LOAD_PER_SECOND)
            except TimeoutError:
                pass
        if pending:
            _, still = await asyncio.wait(pending, timeout=WHOLE_WITHIN_SECONDS)
            self.hung = len(still)  # a hang worse than any answer time: the test fails on it
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)

    async def _one(self) -> None:
        sent = time.monotonic()
        await self.ledger.create(self.client)
        self.answers.append((sent, time.monotonic() - sent))

    def worst(self, since: float, until: float) -> float:
        return max((seconds for sent, seconds in self.answers if since <= sent <= until),
                   default=0.0)


# -- the platform ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def platform(cert_dir: Path, rabbit_node: RabbitNode, redis_server: RedisServer,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultPlatform]:
    """One proxied platform for every case of the module (each case heals it first)."""
    for server in (rabbit_node, redis_server):
        if not server.running:
            server.stop()
            server.start()
    started = await launch_platform(cert_dir, rabbit_node, redis_server,
                                    tmp_path_factory.mktemp("network"), NETWORK_SETTINGS,
                                    proxied=True)
    try:
        yield started
    finally:
        await started.close()


async def amqp_connected(platform: FaultPlatform, component: str) -> int:
    return int(await platform.counter(component, "provisioning_amqp_connected"))


async def wait_whole(platform: FaultPlatform) -> None:
    """Every process running, Service B healthy, every process connected to RabbitMQ."""
    deadline = time.monotonic() + WHOLE_WITHIN_SECONDS
    while True:
        exited = platform.stack.exited()
        assert exited == {}, f"components exited: {exited}"
        try:
            status, _ = await platform.health()
        except aiohttp.ClientError:
            status = 0
        if (status == 200 and await amqp_connected(platform, "api") == 1
                and await amqp_connected(platform, "worker") == WORKER_PROCESSES):
            return
        assert time.monotonic() < deadline, "the platform is not whole again"
        await asyncio.sleep(0.2)


async def detect_disconnection(platform: FaultPlatform, component: str, timeout: float
                               ) -> float | None:
    """Seconds until every process of ``component`` says it lost RabbitMQ (None: not within
    ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await amqp_connected(platform, component) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return None


async def first_task_completed(platform: FaultPlatform, ledger: Ledger, since: float) -> float:
    """Create a task every half second until one completes: seconds from ``since`` to then."""
    deadline = time.monotonic() + WHOLE_WITHIN_SECONDS
    probes: list[str] = []
    while time.monotonic() < deadline:
        task_id = await ledger.create(platform.client)
        if task_id is not None:
            probes.append(task_id)
        statuses = await platform.statuses(probes)
        if "completed" in statuses.values():
            return time.monotonic() - since
        await asyncio.sleep(0.5)
    raise AssertionError("no task created after the heal completed")


async def all_final(platform: FaultPlatform, ledger: Ledger, since: float) -> float:
    await ledger.settle(platform.statuses, timeout=SETTLE_SECONDS)
    return time.monotonic() - since


# -- the matrix -----------------------------------------------------------------------------

@pytest.mark.timeout(150)
@pytest.mark.parametrize("case", cases())
async def test_tasks_survive_a_network_fault_between_two_services(
    platform: FaultPlatform, ledger: Ledger, case: Case
) -> None:
    network = platform.network
    await network.heal()
    await wait_whole(platform)
    proxy = network[case.link]
    before = (proxy.stats.resets, proxy.stats.connections)
    known_before = set(await platform.task_records())  # the earlier cases' tasks
    retries_before = await platform.counter("worker", RETRIES)
    load = TimedLoad(platform.client, ledger)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(BEFORE_FAULT_SECONDS)
        faulted = time.monotonic()
        await case.toxic.inject(proxy)
        detected = None
        if case.amqp and case.toxic.stalls:
            detected = await detect_disconnection(platform, case.component, case.seconds)
        await asyncio.sleep(max(0.0, case.seconds - (time.monotonic() - faulted)))
        await network.heal()
        healed = time.monotonic()
    finally:
        stop.set()
        await running
    recovery = await first_task_completed(platform, ledger, healed)
    settled = await all_final(platform, ledger, healed)
    await wait_whole(platform)
    records = await platform.task_records()
    refused_records = {task: records[task] for task in records.keys() - set(ledger.accepted)
                       if task not in known_before}
    ledger.note(
        link=case.link, toxic=case.toxic.name, fault_seconds=round(case.seconds, 1),
        answer_bound_seconds=case.answer_bound,
        worst_answer_during_fault_seconds=round(load.worst(faulted, healed), 2),
        worst_answer_seconds=round(load.worst(0, healed), 2),
        recovery_seconds=round(recovery, 2), all_final_seconds=round(settled, 2),
        heartbeat_detection_seconds=None if detected is None else round(detected, 2),
        refused_creates_left_a_record=len(refused_records), creates_hung=load.hung,
        service_a_retries=int(await platform.counter("worker", RETRIES) - retries_before),
        proxy_resets=proxy.stats.resets - before[0],
        proxy_connections=proxy.stats.connections - before[1],
    )

    assert ledger.unanswered == 0 and ledger.unexpected == {}, "an answer other than 200 or 500"
    assert ledger.lost == {}
    assert set(ledger.statuses.values()) <= FINAL
    assert (ledger.completed, ledger.failed) == (len(ledger.accepted), 0)
    assert set(refused_records.values()) <= {("failed", "not_queued")}, \
        f"a create answered 500 left a record that reads as running: {refused_records}"
    assert load.hung == 0, f"{load.hung} creates still unanswered long after the fault"
    assert load.worst(0, healed) <= case.answer_bound + MARGIN_SECONDS
    if case.amqp and case.toxic.stalls:  # looked for as long as the stall lasts: the bound + 1 s
        assert detected is not None, \
            f"the stalled AMQP connection was not given up within {case.seconds:.0f} s"
    if case.link == "worker-stub" and case.toxic.stalls:
        assert ledger.notes["service_a_retries"] > 0, "no stalled call was given up and retried"
    if case.toxic.name == "latency":
        assert ledger.refused == 0, "latency below every timeout cost an answer"
