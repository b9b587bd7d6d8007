"""Run the whole platform locally: the Service A stub, Service B and the worker pool.

``python -m provisioning.devstack`` (what ``task dev`` runs) starts the three as child
processes with the current environment, waits until both HTTPS services answer their health
check, prints where they are, and stops every child on Ctrl-C or SIGTERM. The end-to-end
tests and the benchmark start the platform through the same ``Stack``.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .certs import CA_FILE, ensure_certificates

STOP_TIMEOUT_SECONDS = 45.0


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    module: str
    health_url: str | None = None


@dataclass
class Stack:
    """The three components as child processes sharing one environment."""

    environment: Mapping[str, str]
    log_dir: Path | None = None
    python: str = sys.executable
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        env = self.environment
        return f"https://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8081')}"

    @property
    def stub_url(self) -> str:
        env = self.environment
        return f"https://{env.get('STUB_HOST', '127.0.0.1')}:{env.get('STUB_PORT', '8080')}"

    @property
    def ca_file(self) -> Path:
        return Path(self.environment.get("CERT_DIR", "certs")) / CA_FILE

    def components(self) -> list[Component]:
        return [
            Component("stub", "equipment_stub", f"{self.stub_url}/health"),
            Component("api", "provisioning.api", f"{self.api_url}/health"),
            Component("worker", "provisioning.worker"),
        ]

    def start(self, *, only: tuple[str, ...] | None = None) -> None:
        ensure_certificates(Path(self.environment.get("CERT_DIR", "certs")))
        for component in self.components():
            if only is None or component.name in only:
                self.start_component(component.name)

    def start_component(self, name: str) -> None:
        component = next(c for c in self.components() if c.name == name)
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")
            self._logs.append(output)
        self.processes[name] = subprocess.Popen(
            [self.python, "-m", component.module],
            env=dict(self.environment),
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            # Its own process group, so that a kill reaches its helpers too (Sanic's manager).
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0, *, healthy: bool = True) -> None:
        """Wait until every started HTTPS component answers 200 on its health check, or, when
        ``healthy`` is false, answers it at all (a 503 from a Service B without its Redis)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        for component in self.components():
            if component.name not in self.processes or component.health_url is None:
                continue
            while True:
                process = self.processes[component.name]
                if process.poll() is not None:
                    raise RuntimeError(f"{component.name} exited with {process.returncode}")
                try:
                    with urllib.request.urlopen(component.health_url, context=context, timeout=2):
                        break
                except urllib.error.HTTPError:
                    if not healthy:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{component.name} not healthy after {timeout}s") from None
                    time.sleep(0.2)
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{component.name} not healthy after {timeout}s") from None
                    time.sleep(0.2)

    def stop_component(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        process = self.processes.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()

    def stop(self) -> None:
        for name in list(reversed(list(self.processes))):
            self.stop_component(name)
        for log in self._logs:
            log.close()
        self._logs.clear()


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


def main() -> None:
    stack = Stack(environment=os.environ)
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stack.start()
    try:
        stack.wait_ready()
        print(
            f"\nplatform is up (Ctrl-C stops it):\n"
            f"  Service B        {stack.api_url}/api/v1/equipment/cpe/{{id}}\n"
            f"  Service A stub   {stack.stub_url}  (delay {os.environ.get('STUB_DELAY_SECONDS', '60')} s)\n"
            f"  worker pool      {os.environ.get('WORKER_PROCESSES', '2')} processes\n"
            f"  CA certificate   {stack.ca_file.resolve()}\n"
            f"try: curl --cacert {stack.ca_file} -X POST {stack.api_url}/api/v1/equipment/cpe/ABC123 "
            "-d '{\"timeoutInSeconds\":14,\"parameters\":{\"username\":\"admin\","
            "\"password\":\"admin\",\"interfaces\":[1,2]}}'\n",
            flush=True,
        )
        while not stopping:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
