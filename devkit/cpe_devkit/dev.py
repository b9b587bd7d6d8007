"""``task dev``: the whole platform in the foreground, on this machine's Redis and RabbitMQ.

``python -m cpe_devkit.dev`` starts the stub, Service B and the worker pool with the current
environment, waits until both HTTPS services answer their health check, prints where they are,
and stops every component gracefully on SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal
closed). Each component is tied to this launcher, and the launcher to whatever started it
(``task``, a shell): when either dies, even by SIGKILL, the components get SIGTERM, so a stale
platform never keeps the ports.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from equipment_stub.settings import StubSettings
from provisioning.parent_death import die_with_parent
from provisioning.settings import WorkerSettings

from .stack import Stack

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# What this launcher runs unless the environment says otherwise: two stub processes, so that
# the 10,000 calls the default worker pool holds (2 x WORKER_PREFETCH) fit the stub's
# HTTP_MAX_CONNECTIONS with room to spare (README, "Performance and capacity").
DEV_DEFAULTS = {"STUB_WORKERS": "2"}
WATCH_SECONDS = 0.5
READY_SECONDS = 60.0


def banner(stack: Stack) -> str:
    stub = StubSettings.from_env(stack.environment)
    workers = WorkerSettings.from_env(stack.environment)
    return (
        f"\nplatform is up (Ctrl-C stops it):\n"
        f"  Service B        {stack.api_url}/api/v1/equipment/cpe/{{id}}\n"
        f"  Service A stub   {stack.stub_url}  (delay {stub.behaviour.delay_seconds:g} s)\n"
        f"  worker pool      {workers.processes} processes\n"
        f"  CA certificate   {stack.ca_file.resolve()}\n"
        f"try: curl --cacert {stack.ca_file} -X POST {stack.api_url}/api/v1/equipment/cpe/ABC123 "
        "-H 'Content-Type: application/json' "
        "-d '{\"timeoutInSeconds\":14,\"parameters\":{\"username\":\"admin\","
        "\"password\":\"admin\",\"interfaces\":[1,2]}}'\n"
    )


class StopRequested(Exception):
    """A stop signal arrived; raised once, wherever the launcher is (starting, waiting)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def say(text: str) -> None:
    """Print to the terminal, which may be gone already (SIGHUP): the stop goes on regardless."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def main() -> None:
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        if not stopping:  # later signals must not cut the orderly stop short
            stopping.append(signum)
            raise StopRequested(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    die_with_parent(signal.SIGTERM)
    stack = Stack(environment={**DEV_DEFAULTS, **os.environ}, die_with_launcher=True)
    try:
        stack.start()
        stack.wait_ready(READY_SECONDS)
        say(banner(stack))
        while not (exited := stack.exited()):
            time.sleep(WATCH_SECONDS)
        say(f"stopping: {exited} exited")
    except StopRequested as stop:
        say(f"\nstopping the platform ({stop})")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
