"""py-spy profiles of the platform's processes during a run's load, and where their CPU went.

py-spy comes with the dev extra (uv.lock); without it, or without ``--profile``, nothing is
recorded. Raw stacks stay in the run's folder; the report gets a summary per process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .sampling import ProcessSampler

PROFILED_GROUPS = ("api", "worker", "stub")
SAMPLES_PER_SECOND = 100
MIN_SAMPLES = 20  # fewer: an idle process, not worth a line
PROJECT_ROOTS = (("/platform/provisioning/", "provisioning"), ("/stub/equipment_stub/", "equipment_stub"))


def frame_package(frame: str) -> str:
    """The package of a py-spy frame ``function (path:line)``, recorded with --full-filenames."""
    path = frame.rpartition(" (")[2].removesuffix(")").rpartition(":")[0]
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for root, name in PROJECT_ROOTS:
        if root in path:
            module = path.split(root, 1)[1].split("/", 1)[0].removesuffix(".py")
            return f"{name}.{module}"
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
        return f"stdlib {module}"
    if path.startswith("<"):
        return "python"
    return "sanic (generated code)"  # Sanic compiles parts of its HTTP/1 handling at start


def summarize_stacks(lines: Iterable[str], top: int = 12) -> dict[str, Any]:
    """From py-spy's raw output (``frame;frame;... count`` per line): self time by package (the
    sampled frame's own code), and the project's functions by inclusive time (everything they
    called, until a coroutine boundary cuts py-spy's stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frame_package(frames[-1])] += samples
        for frame in set(frames):
            if any(root in frame for root, _ in PROJECT_ROOTS):
                function, _, where = frame.partition(" (")
                inclusive[f"{function} ({where.rsplit('/', 1)[-1]}"] += samples

    def share(samples: int) -> float:
        return round(100 * samples / total, 1) if total else 0.0

    return {
        "samples": total,
        "self_percent_by_package": {name: share(n) for name, n in own.most_common(top)},
        "inclusive_percent_project_functions": {name: share(n) for name, n in inclusive.most_common(top)
                                                if share(n) >= 1.0},
    }


def _pyspy() -> str | None:
    beside_python = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside_python) if beside_python.exists() else None)


class Profiler:
    """py-spy (if installed) on every platform process for a while; raw stacks and summaries."""

    def __init__(self, out_dir: Path, seconds: float) -> None:
        self.out_dir = out_dir
        self.seconds = seconds
        self.pyspy = _pyspy()
        self.running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        self.timer: threading.Timer | None = None

    @property
    def enabled(self) -> bool:
        return self.seconds > 0 and self.pyspy is not None

    def start_later(self, delay: float, tag: str, sampler: ProcessSampler) -> None:
        """Start when the clients start (they open their connections first)."""
        if self.enabled:
            self.timer = threading.Timer(max(delay, 0.0), self.start, args=(tag, sampler))
            self.timer.start()

    def start(self, tag: str, sampler: ProcessSampler) -> None:
        if self.pyspy is None or self.seconds <= 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pid, (_, role) in sampler.members_of(PROFILED_GROUPS).items():
            output = self.out_dir / f"{tag}-{role.replace('/', '_')}-{pid}.txt"
            process = subprocess.Popen(
                [self.pyspy, "record", "-p", str(pid), "-d", str(int(self.seconds)),
                 "-r", str(SAMPLES_PER_SECOND), "-f", "raw", "--full-filenames", "-o", str(output),
                 "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running.append((f"{role} (pid {pid})", output, process))

    def finish(self) -> dict[str, Any]:
        """Wait for the recordings of this run; their summaries by process."""
        if self.timer is not None:
            self.timer.join()
            self.timer = None
        summaries: dict[str, Any] = {}
        for name, output, process in self.running:
            try:
                process.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if output.exists():
                summary = summarize_stacks(output.read_text().splitlines())
                if summary["samples"] >= MIN_SAMPLES:
                    summaries[name] = summary
        self.running.clear()
        return summaries
