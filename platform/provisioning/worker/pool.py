"""The worker pool: ``WORKER_PROCESSES`` worker processes, replaced when one dies.

The parent only supervises. SIGTERM or SIGINT is passed on to every child, which stops taking
tasks and drains; a child still running after its grace period is killed, and the broker
requeues whatever it held. A child that dies on its own (a crash, SIGKILL) is started again;
the messages it held are redelivered to the others meanwhile. A pool that is killed outright
takes its children with it: each gets SIGTERM at the pool's death (``parent_death``) and drains.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from ..logs import configure_logging
from ..open_files import check_open_files, raise_open_file_limit
from ..settings import WorkerSettings
from . import process

log = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = 1.0


class WorkerPool:
    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess] = []
        self._stopping = False

    def _spawn(self, index: int) -> BaseProcess:
        """Start worker process ``index``; it serves its metrics on the base port + index."""
        child = self._context.Process(
            target=process.run, args=(self._settings, index), name=f"provisioning-worker-{index}"
        )
        child.start()
        log.info("worker process started", extra={"pid": child.pid})
        return child

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("pool stopping on signal %d", signum)
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        self._children = [self._spawn(index) for index in range(self._settings.processes)]
        while not self._stopping:
            sentinels = [child.sentinel for child in self._children]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            for index, child in enumerate(self._children):
                if not child.is_alive() and not self._stopping:
                    log.error("worker process died; starting another",
                              extra={"pid": child.pid, "exitcode": child.exitcode})
                    time.sleep(RESTART_PAUSE_SECONDS)
                    self._children[index] = self._spawn(index)
        return self._stop_children()

    def _stop_children(self) -> int:
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                child.terminate()  # SIGTERM: the child drains
        deadline = time.monotonic() + self._settings.shutdown_grace_seconds + 5
        for child in self._children:
            child.join(max(deadline - time.monotonic(), 0))
            if child.is_alive():
                log.warning("worker process did not stop in time; killing it",
                            extra={"pid": child.pid})
                child.kill()
                child.join()
        log.info("pool stopped")
        return 0


def main_pool(settings: WorkerSettings) -> int:
    configure_logging("worker-pool", settings.log_level)
    raise_open_file_limit()  # inherited by every worker process
    # Each task in flight holds its connection to Service A, each webhook delivery its own.
    check_open_files(settings.prefetch + settings.webhooks.prefetch,
                     "WORKER_PREFETCH + WEBHOOK_PREFETCH")
    return WorkerPool(settings).run()
