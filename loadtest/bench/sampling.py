"""CPU, RSS and open files of named process trees, sampled from /proc in a thread.

Each root (a platform component, Redis, RabbitMQ, this process) names a group; its children
(Sanic's and the worker pool's processes, the client processes) belong to it too. The CPU the
whole machine spent is sampled beside them, so that what other work took in the same window
is reported rather than silently counted against the platform.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

SYSTEM = "all (system)"
OTHERS = "others (not this benchmark)"
LOAD_GENERATOR = "bench"  # this process and the client processes it starts
TREE_DEPTH = 4
OPEN_FILES_EVERY = 4  # samples: listing every fd of every process is the costly part


@dataclass(frozen=True)
class Snapshot:
    """Cumulative CPU ticks per process and of the whole machine at one moment."""

    at: float  # monotonic
    ticks: Mapping[int, int]
    system_ticks: int
    members: Mapping[int, tuple[str, str]]  # pid -> (group, role)


@dataclass(frozen=True)
class CpuSplit:
    by_group: dict[str, float]  # seconds, with SYSTEM and OTHERS beside the groups
    by_role: dict[str, float]


def cpu_between(start: Snapshot, end: Snapshot, ticks_per_second: float = CLOCK_TICKS) -> CpuSplit:
    """CPU seconds per group and per process role between two snapshots; a process born
    within the window counts from zero."""
    by_group: defaultdict[str, float] = defaultdict(float)
    by_role: defaultdict[str, float] = defaultdict(float)
    for pid, ticks in end.ticks.items():
        group, role = end.members.get(pid, ("?", "?"))
        seconds = max(ticks - start.ticks.get(pid, 0), 0) / ticks_per_second
        by_group[group] += seconds
        by_role[role] += seconds
    ours = sum(by_group.values())
    by_group[SYSTEM] = (end.system_ticks - start.system_ticks) / ticks_per_second
    by_group[OTHERS] = max(by_group[SYSTEM] - ours, 0.0)
    return CpuSplit(dict(by_group), dict(by_role))


def read_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, CPU ticks user+system, RSS bytes), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_SIZE


def _peak_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_files(pid: int) -> int:
    """How many files (descriptors) a process has open; 0 when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _system_busy_ticks() -> int:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def listening_pid(port: int) -> int | None:
    """The process that listens on a local TCP port (Redis, RabbitMQ), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            continue
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(entry)
        except OSError:
            continue
    return None


class ProcessSampler:
    """Samples named process trees every ``interval``: CPU ticks, RSS, open files.

    ``roots`` maps a group to its root pid; a process in two trees stays in the first group
    that claimed it, so list the groups whose trees hold others' (this process) last."""

    def __init__(self, roots: Mapping[str, int], interval: float = 0.5) -> None:
        self.roots = dict(roots)
        self.interval = interval
        self.lock = threading.Lock()
        self.members: dict[int, tuple[str, str]] = {}  # pid -> (group, role), ever seen
        self.ticks: dict[int, int] = {}  # last seen
        self.rss_series: list[tuple[float, dict[str, int]]] = []
        self.peak_rss: dict[int, int] = {}
        self.peak_files: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._samples = 0

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def _tree(self) -> dict[int, tuple[str, str]]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := read_stat(int(entry))) is not None:
                parents[int(entry)] = stat[0]
        members: dict[int, tuple[str, str]] = {}
        for group, root in self.roots.items():
            members[root] = (group, group)
            frontier: list[int] = [root]
            for depth in range(1, TREE_DEPTH + 1):
                children = [pid for pid, parent in parents.items() if parent in frontier]
                if not children:
                    break
                for index, child in enumerate(children):
                    members.setdefault(child, (group, f"{group}/child{depth}.{index}"))
                frontier = children
        return members

    def sample(self) -> None:
        members = self._tree()
        files_now = self._samples % OPEN_FILES_EVERY == 0
        self._samples += 1
        rss_by_group: Counter[str] = Counter()
        with self.lock:
            for pid, (group, role) in members.items():
                stat = read_stat(pid)
                if stat is None:
                    continue
                self.members.setdefault(pid, (group, role))
                self.ticks[pid] = stat[1]
                rss_by_group[group] += stat[2]
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), stat[2], _peak_rss(pid))
                if files_now:
                    self.peak_files[pid] = max(self.peak_files.get(pid, 0), open_files(pid))
            self.rss_series.append((time.monotonic(), dict(rss_by_group)))

    def snapshot(self) -> Snapshot:
        self.sample()
        with self.lock:
            return Snapshot(time.monotonic(), dict(self.ticks), _system_busy_ticks(), dict(self.members))

    def rss_between(self, start: float, end: float) -> dict[str, tuple[int, int]]:
        """(first, peak) summed RSS per group within a time window (monotonic)."""
        window = [rss for at, rss in self.rss_series if start <= at <= end]
        if not window:
            return {}
        return {group: (window[0][group], max(rss.get(group, 0) for rss in window)) for group in window[0]}

    def peaks(self, groups: Iterable[str]) -> dict[str, dict[str, float]]:
        """Peak RSS (MiB) and open files of every process of ``groups`` ever seen."""
        wanted = set(groups)
        with self.lock:
            return {
                f"{role} (pid {pid})": {"peak_rss_mib": round(self.peak_rss.get(pid, 0) / 2**20, 1),
                                         "peak_open_files": self.peak_files.get(pid, 0)}
                for pid, (group, role) in sorted(self.members.items(), key=lambda item: item[1])
                if group in wanted
            }

    def members_of(self, groups: Iterable[str]) -> dict[int, tuple[str, str]]:
        """The live processes of ``groups``: pid -> (group, role)."""
        wanted = set(groups)
        with self.lock:
            members = dict(self.members)
        return {pid: member for pid, member in members.items()
                if member[0] in wanted and read_stat(pid) is not None}
