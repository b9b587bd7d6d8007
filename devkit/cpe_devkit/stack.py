"""The platform's three components (the Service A stub, Service B, the worker pool) as child
processes sharing one environment: what ``task dev``, the tests, the benchmark and Locust's
smoke run start. Addresses come from the components' own settings classes, never retyped.

A component may get variables of its own on top of the shared environment
(``component_environments``): the network fault tests point Service B's and the worker pool's
``REDIS_URL``, ``AMQP_URL`` and ``SERVICE_A_URL`` at a fault proxy each.
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from subprocess import Popen

from equipment_stub.settings import StubSettings
from provisioning.certs import ensure_certificates
from provisioning.settings import ApiSettings, WorkerSettings

from .probes import sample_total, scrape
from .processes import Background
from .run_data import delete_run_data_now

STOP_TIMEOUT_SECONDS = 45.0
HEALTH_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    module: str
    health_url: str | None = None


@dataclass
class Stack:
    """The three components as child processes sharing one environment.

    ``log_dir`` gives each component a log file of its own (``None``: the launcher's
    terminal); ``die_with_launcher`` ties every component to this process, so that even a
    SIGKILL of the launcher stops them (see ``processes.die_with_parent``);
    ``component_environments`` adds variables to one component's environment, by component
    name (``stub``, ``api``, ``worker``). The addresses the launcher reads (``api_url``,
    ``stub_url``, the metrics ports) come from the shared environment.
    """

    environment: Mapping[str, str]
    log_dir: Path | None = None
    python: str = sys.executable
    die_with_launcher: bool = False
    component_environments: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    _children: dict[str, Background] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        api = ApiSettings.from_env(self.environment)
        return f"https://{api.host}:{api.port}"

    @property
    def stub_url(self) -> str:
        stub = StubSettings.from_env(self.environment)
        return f"https://{stub.host}:{stub.port}"

    @property
    def ca_file(self) -> Path:
        return ApiSettings.from_env(self.environment).tls.ca_file

    @property
    def cert_dir(self) -> Path:
        return self.ca_file.parent

    @property
    def processes(self) -> dict[str, Popen[bytes]]:
        """The running components' processes, by component name, in start order."""
        return {name: child.process for name, child in self._children.items()
                if child.process is not None}

    def environment_of(self, name: str) -> dict[str, str]:
        """The environment component ``name`` starts with: the shared one and its own."""
        return {**self.environment, **self.component_environments.get(name, {})}

    def components(self) -> list[Component]:
        return [
            Component("stub", "equipment_stub", f"{self.stub_url}/health"),
            Component("api", "provisioning.api", f"{self.api_url}/health"),
            Component("worker", "provisioning.worker"),
        ]

    def start(self, *, only: tuple[str, ...] | None = None) -> None:
        ensure_certificates(self.cert_dir)
        for component in self.components():
            if only is None or component.name in only:
                self.start_component(component.name)

    def start_component(self, name: str) -> None:
        component = next(c for c in self.components() if c.name == name)
        unknown = self.component_environments.keys() - {c.name for c in self.components()}
        if unknown:
            raise ValueError(f"no component named {sorted(unknown)} to give variables to")
        child = self._children.get(name)
        if child is None:
            log_file = None if self.log_dir is None else self.log_dir / f"{name}.log"
            child = Background(name, log_file, die_with_parent=self.die_with_launcher)
        # Re-inserted last, so that the stop order stays the reverse of the start order.
        self._children.pop(name, None)
        self._children[name] = child
        child.start([self.python, "-m", component.module], self.environment_of(name))

    def wait_ready(self, timeout: float = 30.0, *, healthy: bool = True) -> None:
        """Wait until every started HTTPS component answers 200 on its health check, or, when
        ``healthy`` is false, answers it at all (a 503 from a Service B without its Redis); and
        until every worker process serves its metrics, saying it is connected to RabbitMQ
        (when ``healthy``): a task created before that would wait for a worker to start."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        for component in self.components():
            child = self._children.get(component.name)
            if child is None or child.process is None:
                continue
            ready: Callable[[], bool]
            if component.health_url is not None:
                ready = partial(_health_answers, component.health_url, context, healthy=healthy)
            elif component.name == "worker":
                ready = partial(_workers_ready, self.environment_of("worker"), healthy=healthy)
            else:
                continue
            while not ready():
                if child.process.poll() is not None:
                    raise RuntimeError(f"{component.name} exited with {child.process.returncode}"
                                       f"\n{child.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{component.name} not healthy after {timeout}s")
                time.sleep(HEALTH_POLL_SECONDS)

    def exited(self) -> dict[str, int]:
        """Components that were started and have exited since: their exit codes."""
        return {name: code for name, process in self.processes.items()
                if (code := process.poll()) is not None}

    def stop_component(self, name: str, sig: int | None = None) -> int | None:
        """Signal one component (SIGTERM unless told) and wait for it: its exit code."""
        child = self._children.get(name)
        if child is None:
            return None
        if sig is None:
            return child.stop(timeout=STOP_TIMEOUT_SECONDS)
        return child.stop(sig, timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop every component, the last started first, and close their logs. Idempotent."""
        for name in reversed(list(self._children)):
            self.stop_component(name)
        for child in self._children.values():
            child.close()


def _workers_ready(environment: Mapping[str, str], *, healthy: bool) -> bool:
    """Every worker process serves its metrics (and, when ``healthy``, is connected to
    RabbitMQ); True at once when the workers' metrics are off."""
    worker = WorkerSettings.from_env(environment)
    ports = [worker.metrics.port(index) for index in range(worker.processes)]
    for port in ports:
        if not port:
            return True
        try:
            samples = scrape(port, worker.metrics.host)
        except (OSError, RuntimeError):
            return False
        if healthy and sample_total(samples, "provisioning_amqp_connected") < 1:
            return False
    return True


def _health_answers(url: str, context: ssl.SSLContext, *, healthy: bool) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2):
            return True
    except urllib.error.HTTPError:
        return not healthy
    except OSError:
        return False


@contextmanager
def running_stack(environment: Mapping[str, str], log_dir: Path | None = None, *,
                  only: tuple[str, ...] | None = None, ready_timeout: float = 60.0,
                  healthy: bool = True) -> Iterator[Stack]:
    """Start the components (all, or ``only`` those), wait until they answer, stop them after."""
    stack = Stack(environment, log_dir=log_dir)
    try:
        stack.start(only=only)
        stack.wait_ready(ready_timeout, healthy=healthy)
        yield stack
    finally:
        stack.stop()


@contextmanager
def throwaway_stack(environment: Mapping[str, str], log_dir: Path | None = None, *,
                    only: tuple[str, ...] | None = None, ready_timeout: float = 60.0,
                    healthy: bool = True) -> Iterator[Stack]:
    """``running_stack`` on the machine's Redis and RabbitMQ for one throwaway run; afterwards
    the keys and queues of its run are deleted too."""
    try:
        with running_stack(environment, log_dir, only=only, ready_timeout=ready_timeout,
                           healthy=healthy) as stack:
            yield stack
    finally:
        delete_run_data_now(environment)
