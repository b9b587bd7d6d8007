"""Child processes of the development kit: each in its own session with its output in a log
file (or the launcher's terminal), every wait bounded, ``stop()`` safe to call twice and
``close()`` the end of it; and the plain HTTP probes that tell when such a server is ready.

A child may be tied to its launcher (``die_with_parent``): Linux then sends it SIGTERM when
the launcher dies, however it dies, SIGKILL included (``PR_SET_PDEATHSIG``), so a killed
``task dev`` never leaves a platform behind holding its ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from provisioning.parent_death import die_with_parent


def tail(log: Path | None, lines: int = 30) -> str:
    """The last lines of a log, or nothing when there is none."""
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Poll ``check`` until it holds; fail with the log's tail on timeout or when the process
    exits first."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before {what}\n{tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout:.0f} s\n{tail(log)}")
        time.sleep(0.2)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers(url: str) -> bool:
    """True when the URL answers 200 now (a server that is up and ready)."""
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


@dataclass
class Background:
    """One command run in the background, started again at will; its log file (``None``: the
    launcher's own stdout and stderr) is appended to across restarts and closed by ``close()``.

    ``die_with_parent`` ties the child to the thread that starts it (Linux's death signal
    follows the forking thread): start such children from a thread that lives as long as they
    should, the main thread of a launcher.
    """

    name: str
    log_file: Path | None
    die_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    def start(self, command: list[str], environment: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._log is None and self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # closed by close()
        self.process = subprocess.Popen(
            command, env=None if environment is None else dict(environment), cwd=cwd,
            stdout=self._log, stderr=None if self._log is None else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a terminal's Ctrl-C or hang-up reaches the launcher only, which
            # stops its children in order; a kill of the session reaches a child's helpers too.
            start_new_session=True,
            preexec_fn=die_with_parent if self.die_with_parent else None,
        )

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(check, timeout=timeout, what=f"{self.name} {what}", process=self.process,
                   log=self.log_file)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal the process and wait for it; kill its whole session when it does not stop.
        Its exit code, or None when it was not running."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is not None:
            return process.returncode
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
