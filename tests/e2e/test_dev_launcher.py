"""``./task dev`` stops every process it started, whichever way it is stopped: Ctrl-C, SIGTERM
and a closed terminal (SIGHUP to its process group) stop the platform gracefully, and a SIGKILL
of ``task`` or of the launcher leaves no component behind holding the ports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from cpe_devkit.environment import platform_environment
from cpe_devkit.ports import port_is_free
from cpe_devkit.processes import tail, wait_until
from cpe_devkit.run_data import delete_run_data_now
from tests.support.services import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

UP_SECONDS = 90.0
GONE_SECONDS = 60.0
WORKER_PROCESSES = 2
COMPONENTS = ("equipment_stub", "provisioning.api", "provisioning.worker")


@dataclass
class RunningDev:
    """``./task dev`` in a process group of its own, as a terminal runs it in the foreground."""

    task: subprocess.Popen[bytes]
    log: Path
    environment: dict[str, str]

    @property
    def descendants(self) -> list[psutil.Process]:
        return list(psutil.Process(self.task.pid).children(recursive=True))

    @property
    def launcher(self) -> psutil.Process:
        return next(p for p in self.descendants if "cpe_devkit.dev" in p.cmdline())

    def components(self) -> list[psutil.Process]:
        return [p for p in self.descendants
                if any(component in p.cmdline() for component in COMPONENTS)]

    @property
    def ports(self) -> list[int]:
        return [int(self.environment[name]) for name in ("API_PORT", "STUB_PORT")]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie is dead: nothing reaps orphans in some containers)."""
    running = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.fixture
def dev(cert_dir: Path, tmp_path: Path) -> Iterator[RunningDev]:
    environment = platform_environment(cert_dir, tag="dev", work_dir=tmp_path,
                                       worker_processes=WORKER_PROCESSES,
                                       STUB_DELAY_SECONDS="0.5", OTEL_SDK_DISABLED="true")
    log = tmp_path / "task-dev.log"
    with open(log, "wb") as output:
        task = subprocess.Popen([str(REPO / "task"), "dev"], cwd=REPO, env=environment,
                                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    running = RunningDev(task, log, environment)
    everything: list[psutil.Process] = []
    try:
        # The launcher waits for the HTTPS services; the pool's processes come up beside them.
        wait_until(lambda: "platform is up" in tail(log, 200)
                   and tail(log, 200).count("worker consuming") == WORKER_PROCESSES,
                   timeout=UP_SECONDS, what="./task dev up", process=task, log=log)
        everything = running.descendants
        assert len(running.components()) == len(COMPONENTS), running.components()
        yield running
    finally:
        for process in alive([*everything, *running.descendants]):
            process.kill()
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)
        task.wait(10)
        delete_run_data_now(environment)


def assert_nothing_left(dev: RunningDev, processes: list[psutil.Process]) -> None:
    deadline = time.monotonic() + GONE_SECONDS
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [(p.pid, " ".join(p.cmdline())) for p in alive(processes)]
    assert left == [], f"still running after {GONE_SECONDS:.0f} s:\n{left}\n{tail(dev.log)}"
    assert [port for port in dev.ports if not port_is_free(port)] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["ctrl-c", "sigterm", "terminal-closed"])
def test_a_signal_to_the_foreground_group_stops_every_process_gracefully(
    dev: RunningDev, sig: signal.Signals
) -> None:
    processes = dev.descendants
    os.killpg(dev.task.pid, sig)
    assert_nothing_left(dev, processes)
    log = tail(dev.log, 400)
    assert f"stopping the platform ({sig.name})" in log
    assert "pool stopping on signal 15" in log  # the pool was asked to drain, not killed


@pytest.mark.parametrize("victim", [lambda dev: dev.task.pid, lambda dev: dev.launcher.pid],
                         ids=["task", "launcher"])
def test_a_sigkill_leaves_no_component_behind(
    dev: RunningDev, victim: Callable[[RunningDev], int]
) -> None:
    processes = dev.descendants
    os.kill(victim(dev), signal.SIGKILL)
    assert_nothing_left(dev, processes)
