"""The platform under test, wired to the fault tests' own Redis and RabbitMQ, and what a test
reads from it: health, Prometheus counters, the worker pool's processes, queue depths, and the
stub's behaviour (changed at run time through its admin endpoint). Optionally each client
reaches each of its servers through a fault proxy of its own (``Network``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil
import redis.asyncio as aioredis

from cpe_devkit import probes
from cpe_devkit.client import Client, client_session
from cpe_devkit.fault_proxy import FaultProxy
from cpe_devkit.processes import tail
from cpe_devkit.rabbit_node import QueueDepth, RabbitNode
from cpe_devkit.redis_server import RedisServer
from cpe_devkit.run_data import delete_run_data
from cpe_devkit.stack import Stack
from provisioning import names
from provisioning.environment import Environment
from provisioning.messaging import all_queues
from provisioning.settings import ApiSettings, RedisSettings, WorkerSettings
from provisioning.store import TaskStore
from tests.support.platforms import e2e_environment

READY_SECONDS = 60.0
STATUS_READ_BATCH = 500

# Short delays and retries, so that a fault and its recovery fit in seconds.
FAULT_DEFAULTS = {
    "STUB_DELAY_SECONDS": "0.5",
    "SERVICE_A_ATTEMPTS": "3",
    "SERVICE_A_BACKOFF_SECONDS": "0.2",
    "SERVICE_A_BACKOFF_MAX_SECONDS": "1",
    "REDIS_TIMEOUT_SECONDS": "1",
    "WORKER_PROCESSES": "2",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "LOG_LEVEL": "INFO",
}


def fault_environment(cert_dir: Path, rabbit: RabbitNode, redis: RedisServer, work_dir: Path,
                      overrides: Mapping[str, str]) -> dict[str, str]:
    """The e2e platform's environment, pointed at our own servers, with short delays."""
    settings = {**FAULT_DEFAULTS, **overrides}
    environment = e2e_environment(cert_dir, worker_processes=int(settings["WORKER_PROCESSES"]))
    environment.update({
        **settings,
        "REDIS_URL": redis.url,
        "AMQP_URL": rabbit.amqp_url,
        # In the test's own directory, not /tmp: removed with it.
        "STUB_BEHAVIOUR_FILE": str(work_dir / "stub-behaviour.json"),
    })
    return environment


# The links a ``Network`` puts a proxy on: client component, and the variable naming its server.
LINKS = {
    "api-redis": ("api", "REDIS_URL"),
    "api-rabbitmq": ("api", "AMQP_URL"),
    "worker-redis": ("worker", "REDIS_URL"),
    "worker-rabbitmq": ("worker", "AMQP_URL"),
    "worker-stub": ("worker", "SERVICE_A_URL"),
}


class Network:
    """A fault proxy on each link between a component and one of its servers (``LINKS``):
    Service B to Redis and to RabbitMQ, the worker pool to Redis, to RabbitMQ and to the stub.
    The proxies run in the test's event loop; the test and its probes reach the servers
    directly (statuses, queue depths, metrics), so they see the truth whatever the fault."""

    def __init__(self, proxies: dict[str, FaultProxy], addresses: dict[str, str]) -> None:
        self.proxies = proxies
        self._addresses = addresses  # link -> the URL its client is given

    @classmethod
    async def between(cls, environment: Mapping[str, str]) -> Network:
        api, worker = ApiSettings.from_env(environment), WorkerSettings.from_env(environment)
        servers = {"api-redis": api.redis.url, "api-rabbitmq": api.broker.url,
                   "worker-redis": worker.redis.url, "worker-rabbitmq": worker.broker.url,
                   "worker-stub": worker.service_a_url}
        proxies: dict[str, FaultProxy] = {}
        addresses: dict[str, str] = {}
        try:
            for link, url in servers.items():
                parts = urlsplit(url)
                assert parts.hostname is not None and parts.port is not None, url
                proxy = FaultProxy(parts.hostname, parts.port, name=link)
                await proxy.start()
                proxies[link] = proxy
                credentials = parts.netloc.rpartition("@")[0]
                netloc = f"{credentials}@" if credentials else ""
                # The host name stays 127.0.0.1: TLS to the stub still verifies its certificate.
                netloc += f"{parts.hostname}:{proxy.port}"
                addresses[link] = parts._replace(netloc=netloc).geturl()
        except BaseException:
            for proxy in proxies.values():
                await proxy.close()
            raise
        return cls(proxies, addresses)

    def __getitem__(self, link: str) -> FaultProxy:
        return self.proxies[link]

    def component_environments(self) -> dict[str, dict[str, str]]:
        """Each client component's variables pointing at its proxies (``Stack``'s overrides)."""
        found: dict[str, dict[str, str]] = {}
        for link, (component, variable) in LINKS.items():
            found.setdefault(component, {})[variable] = self._addresses[link]
        return found

    async def heal(self) -> None:
        for proxy in self.proxies.values():
            await proxy.heal()

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()


@dataclass(frozen=True)
class WorkerProcess:
    pid: int
    index: int

    @property
    def alive(self) -> bool:
        try:
            return bool(psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False


class FaultPlatform:
    """Stub, Service B and worker pool as processes, with a client of Service B."""

    def __init__(self, stack: Stack, rabbit: RabbitNode, redis: RedisServer,
                 network: Network | None = None) -> None:
        self.stack = stack
        self.rabbit = rabbit
        self.redis = redis
        self._network = network
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def launch(cls, environment: dict[str, str], log_dir: Path, rabbit: RabbitNode,
                     redis: RedisServer, *, proxied: bool = False) -> FaultPlatform:
        """Start the platform; ``proxied``: through a ``Network`` of fault proxies."""
        network = await Network.between(environment) if proxied else None
        overrides = network.component_environments() if network is not None else {}
        platform = cls(Stack(environment, log_dir=log_dir, component_environments=overrides),
                       rabbit, redis, network)
        try:
            platform.stack.start()
            await asyncio.to_thread(platform.stack.wait_ready, READY_SECONDS)
            await platform.wait_workers(int(environment["WORKER_PROCESSES"]), READY_SECONDS)
        except Exception as error:
            tails = "\n".join(f"--- {name}.log\n{tail(log_dir / f'{name}.log')}"
                              for name in ("stub", "api", "worker"))
            await platform.close()
            raise RuntimeError(f"the platform did not start: {error!r}\n{tails}") from error
        except BaseException:
            await platform.close()
            raise
        return platform

    async def close(self) -> None:
        """Stop every component and delete the run's keys and queues. Idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        # All at once: each stop waits for its own process (and kills it if it hangs).
        await asyncio.gather(*(asyncio.to_thread(self.stack.stop_component, name)
                               for name in list(self.stack.processes)))
        await asyncio.to_thread(self.stack.stop)  # closes the log files
        if self._network is not None:
            await self._network.close()
        if self.rabbit.running and self.redis.running:
            await delete_run_data(self.environment)

    @property
    def environment(self) -> Mapping[str, str]:
        return self.stack.environment

    @property
    def network(self) -> Network:
        """The fault proxies (a platform launched ``proxied``)."""
        assert self._network is not None, "the platform was not launched through proxies"
        return self._network

    @property
    def client(self) -> Client:
        if self._session is None:
            self._session = client_session(self.stack.ca_file)
        return Client(self._session, self.stack.api_url)

    async def start(self, component: str) -> None:
        """Start a stopped component again (same ports) and wait until it answers."""
        self.stack.start_component(component)
        await asyncio.to_thread(self.stack.wait_ready, READY_SECONDS)
        if component == "worker":
            await self.wait_workers(int(self.environment["WORKER_PROCESSES"]), READY_SECONDS)

    async def restart_with(self, component: str, **overrides: str) -> None:
        """Stop a component (SIGTERM), add ``overrides`` to the stack's environment and start it
        again: e.g. the worker pool in another ``EQUIPMENT_CONCURRENCY`` mode than Service B.
        The variables stay for the component's later starts (the stack has one environment)."""
        await self.stop(component, signal.SIGTERM)
        self.stack.environment = {**self.stack.environment, **overrides}
        await self.start(component)

    async def stop(self, component: str, sig: int) -> tuple[int | None, float]:
        """Signal a component and wait for it to exit: its exit code and how long it took."""
        started = time.monotonic()
        code = await asyncio.to_thread(self.stack.stop_component, component, sig)
        return code, time.monotonic() - started

    # -- Service B --------------------------------------------------------------------------------

    async def health(self) -> tuple[int, dict[str, Any]]:
        return await self.client.health()

    async def wait_health(self, status: int, timeout: float) -> dict[str, Any]:
        """Poll /health until it answers ``status``; its body."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answered, body = await self.health()
                if answered == status:
                    return body
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/health did not answer {status} within {timeout} s")
            await asyncio.sleep(0.2)

    async def statuses(self, task_ids: Sequence[str]) -> dict[str, str | None]:
        """Each task's status as the store reads it now (None where there is no record)."""
        found: dict[str, str | None] = {}
        async with TaskStore(RedisSettings.from_env(Environment(self.environment))) as store:
            for start in range(0, len(task_ids), STATUS_READ_BATCH):
                chunk = task_ids[start:start + STATUS_READ_BATCH]
                records = await store.get_many(chunk)
                found.update((task_id, None if record is None else record.status.value)
                             for task_id, record in zip(chunk, records, strict=True))
        return found

    async def task_records(self) -> dict[str, tuple[str, str]]:
        """Every task record of this run in Redis: its status and failure reason, by task id."""
        prefix = f"{self.environment['REDIS_KEY_PREFIX']}{names.TASK_KEY}"
        client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        try:
            records: dict[str, tuple[str, str]] = {}
            async for key in client.scan_iter(match=f"{prefix}*"):
                status, failure = await client.hmget(key, "status", "failure")
                # {prefix}task:{equipment id}:{task id}
                records[str(key).rsplit(":", 1)[-1]] = (str(status), str(failure or ""))
            return records
        finally:
            await client.aclose()

    # -- metrics ----------------------------------------------------------------------------------

    async def scrape(self, port: int) -> probes.Samples:
        """The samples of one process's /metrics: (name, labels) -> value."""
        return await asyncio.to_thread(probes.scrape, port)

    async def counter(self, component: str, name: str, **labels: str) -> float:
        """A sample summed over the component's processes (0 for a process that has none)."""
        return await asyncio.to_thread(probes.component_total, self.environment, component, name,
                                       **labels)

    async def wait_counter(self, component: str, name: str, at_least: float, timeout: float,
                           **labels: str) -> float:
        """Poll a counter until it reaches ``at_least``; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.counter(component, name, **labels)
            if value >= at_least:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} is {value} after {timeout} s, not {at_least}")
            await asyncio.sleep(0.1)

    async def stub_answers(self, answer: str) -> float:
        return await self.counter("stub", "equipment_stub_answers_total", answer=answer)

    # -- the stub's behaviour -------------------------------------------------------------------

    async def stub_behaviour(self, **changes: Any) -> dict[str, Any]:
        """Change the stub's behaviour at run time (``delaySeconds``, ``failureRatio``...)."""
        url = f"{self.stack.stub_url}/admin/behaviour"
        async with self.client.session.put(url, json=changes) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    # -- the worker pool --------------------------------------------------------------------------

    def workers(self) -> list[WorkerProcess]:
        """The pool's worker processes (not multiprocessing's resource tracker), by index."""
        pool = psutil.Process(self.stack.processes["worker"].pid)
        base = int(self.environment["WORKER_METRICS_PORT"])
        found = []
        for child in pool.children():
            try:
                if "spawn_main" not in " ".join(child.cmdline()):
                    continue
                ports = [c.laddr.port for c in child.net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN]
            except psutil.NoSuchProcess:
                continue
            for port in ports:
                if base <= port < base + int(self.environment["WORKER_PROCESSES"]):
                    found.append(WorkerProcess(child.pid, port - base))
        return sorted(found, key=lambda worker: worker.index)

    async def wait_workers(self, count: int, timeout: float,
                           without: Iterable[int] = ()) -> list[WorkerProcess]:
        """Wait until ``count`` workers serve their metrics (none of the pids ``without``)."""
        excluded = set(without)
        deadline = time.monotonic() + timeout
        while True:
            workers = [w for w in self.workers() if w.pid not in excluded]
            if len(workers) == count:
                return workers
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(workers)} of {count} worker processes up after {timeout} s")
            await asyncio.sleep(0.2)

    async def worker_in_flight(self, worker: WorkerProcess) -> int:
        port = int(self.environment["WORKER_METRICS_PORT"]) + worker.index
        samples = await self.scrape(port)
        return int(samples.get(("provisioning_worker_tasks_in_flight", frozenset()), 0))

    def kill(self, worker: WorkerProcess, sig: int) -> None:
        os.kill(worker.pid, sig)

    # -- queues -------------------------------------------------------------------------------------

    @property
    def queues(self) -> list[str]:
        tasks, results = self.environment["TASKS_QUEUE"], self.environment["RESULTS_QUEUE"]
        return all_queues(tasks, results)

    async def queue_depths(self) -> dict[str, QueueDepth]:
        """Ready and unacknowledged messages of this run's four queues."""
        depths = await asyncio.to_thread(self.rabbit.queue_depths)
        return {queue: depths.get(queue, QueueDepth(0, 0)) for queue in self.queues}

    async def queue_state(self, queue: str) -> tuple[int, int]:
        """Messages ready and consumers attached, as the queue itself says now."""
        return await probes.queue_state(self.rabbit.amqp_url, queue)

    async def wait_released(self, queue: str, timeout: float) -> QueueDepth:
        """Once the queue's consumers are gone: what is ready, and what is still unacked
        (nothing, unless a message is held by no one and never released)."""
        deadline = time.monotonic() + timeout
        while True:
            ready, consumers = await self.queue_state(queue)
            unacked = (await self.queue_depths())[queue].unacked
            if (consumers == 0 and unacked == 0) or time.monotonic() > deadline:
                ready, _ = await self.queue_state(queue)
                return QueueDepth(ready, unacked)
            await asyncio.sleep(0.3)

    async def wait_queues_empty(self, timeout: float, *, dead_letters: bool = True
                                ) -> dict[str, QueueDepth]:
        """Wait until no message is ready or unacked (dead-letter queues too, unless told)."""
        checked = self.queues if dead_letters else self.queues[:2]
        deadline = time.monotonic() + timeout
        while True:
            depths = await self.queue_depths()
            if all(depths[queue] == QueueDepth(0, 0) for queue in checked):
                return depths
            if time.monotonic() > deadline:
                return depths
            await asyncio.sleep(0.5)

    async def publish(self, queue: str, body: bytes) -> None:
        """Put a message straight on a queue, as a stray or broken producer would."""
        await probes.publish_raw(self.rabbit.amqp_url, queue, body)

    async def take_dead_letters(self, queue: str, count: int, timeout: float) -> list[bytes]:
        """Wait until ``{queue}.dead`` holds ``count`` messages, then take them all (bodies)."""
        return await probes.take_dead_letters(self.rabbit.amqp_url, queue, count, timeout)

    # -- logs ---------------------------------------------------------------------------------------

    def log_entries(self, component: str) -> list[dict[str, Any]]:
        """The component's structured log lines (JSON objects), in order."""
        assert self.stack.log_dir is not None
        path = self.stack.log_dir / f"{component}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logged_tasks(self, component: str, message_start: str) -> set[str]:
        """Ids of the tasks the component logged a message starting with ``message_start`` for."""
        return {entry["task_id"] for entry in self.log_entries(component)
                if "task_id" in entry and entry["message"].startswith(message_start)}


async def launch_platform(cert_dir: Path, rabbit: RabbitNode, redis: RedisServer, work_dir: Path,
                          overrides: Mapping[str, str], *, proxied: bool = False) -> FaultPlatform:
    """A started platform on our servers (``fault_environment`` with ``overrides``).

    Free ports are picked before the processes bind them; on a busy machine another socket may
    take one meanwhile, so a start that fails is tried once more on new ports (a real start-up
    bug fails twice, and the error carries the components' logs)."""
    for attempt in (1, 2):
        environment = fault_environment(cert_dir, rabbit, redis, work_dir, overrides)
        try:
            return await FaultPlatform.launch(environment, work_dir / f"logs-{attempt}", rabbit,
                                              redis, proxied=proxied)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# ``start_platform(**overrides)``: a started FaultPlatform, stopped after the test.
PlatformFactory = Callable[..., Awaitable[FaultPlatform]]


def redelivered_tasks(platform: FaultPlatform) -> int:
    """How many times a worker started a task that RabbitMQ had delivered before."""
    return sum(entry["message"] == "task running" and entry.get("redelivered") is True
               for entry in platform.log_entries("worker"))
