"""Child processes the tests start themselves: each in its own session with its output in a log
file, every wait bounded, ``stop()`` safe to call twice and ``close()`` the end of it; and the
plain HTTP probes that tell when such a server is ready."""

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
            return response.status, response.read()
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
    """One command run in the background, started again at will; its log file is appended to
    across restarts and closed by ``close()``."""

    name: str
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: list[str], environment: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._log is None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # closed by close()
        self.process = subprocess.Popen(
            command, env=None if environment is None else dict(environment), cwd=cwd,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(check, timeout=timeout, what=f"{self.name} {what}", process=self.process,
                   log=self.log_file)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_file, lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Signal the process and wait for it; kill its whole session when it does not stop."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
