"""What one client process is asked to do and what it answers: plain, picklable data, so that
it crosses to the client processes and back, and the figures read it without any I/O."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class JobKind(StrEnum):
    CREATE = "create"  # closed loop of creates for ``duration``
    STATUS = "status"  # closed loop of status reads of ``tasks`` for ``duration``
    SUBMIT = "submit"  # ``count`` creates, as fast as the API takes them
    RATE = "rate"  # open loop: ``rate`` creates per second for ``duration``
    # ``count`` creates, each then followed by a waiting client of its own until its final
    # status arrives or ``notice_seconds`` after its create passed (``waiters``):
    POLL = "poll"  # a status read every ``wait_seconds``, over a shared keep-alive pool
    LONG_POLL = "long-poll"  # ``?wait=<wait_seconds>`` again and again, one connection each
    SSE = "sse"  # the task's event stream, one connection each
    # Open loop: ``rate`` creates per second for ``duration``, each followed by a polling
    # waiter (a status read every ``wait_seconds``) until its final status or ``notice_seconds``:
    SOAK = "soak"


@dataclass(frozen=True)
class ClientJob:
    kind: JobKind
    base_url: str
    ca_file: str
    concurrency: int
    start_at: float  # wall clock, so that every client starts together
    duration: float = 0.0
    count: int = 0
    rate: float = 0.0
    tasks: tuple[tuple[str, str], ...] = ()
    tag: str = "c0"
    token: str = ""  # Service B's bearer token, when API_TOKENS is set
    callback_url: str = ""  # SUBMIT: each create names it as its ``callbackUrl``
    wait_seconds: float = 0.0  # POLL: the interval; LONG_POLL: the ``?wait=``
    notice_seconds: float = 0.0  # waiters: a task's notice later than this after its create is lost
    progress_file: str = ""  # where the client writes its counts now and then (none: not written)

    @property
    def waits(self) -> bool:
        """Whether each created task is followed by a waiting client of its own."""
        return self.kind in WAITING_KINDS


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP status or exception name
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (equipment id, task id) created
    first: float = 0.0
    last: float = 0.0
    max_lag: float = 0.0  # rate: how late the generator started a request, at worst
    cpu_seconds: float = 0.0
    # Waiters: task id -> wall clock when its final status reached the client, and the status
    # it said; what went wrong while waiting (HTTP status or exception name -> count).
    notices: dict[str, tuple[float, str]] = field(default_factory=dict)
    wait_errors: Counter[str] = field(default_factory=Counter)
    created_at: dict[str, float] = field(default_factory=dict)  # SOAK: task id -> create answered (wall)


WAITING_KINDS = frozenset({JobKind.POLL, JobKind.LONG_POLL, JobKind.SSE, JobKind.SOAK})


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares as even as can be, the larger first."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


@dataclass(frozen=True)
class Target:
    """Where the clients send their requests."""

    base_url: str
    ca_file: str
    token: str = ""


def plan_jobs(target: Target, kind: JobKind, clients: int, concurrency: int, *, count: int = 0,
              rate: float = 0.0, duration: float = 0.0, tasks: tuple[tuple[str, str], ...] = (),
              now: float | None = None, callback_url: str = "", wait_seconds: float = 0.0,
              notice_seconds: float = 0.0, progress_dir: str = "") -> list[ClientJob]:
    """One job per client process, the concurrency, count and rate shared between them. They
    start together a little later, once every client has opened its connections; waiters give
    up ``notice_seconds`` after their task's create, and write their progress in ``progress_dir``."""
    start_at = (time.time() if now is None else now) + 2.0 + concurrency / 200
    shares = split(concurrency, clients)
    counts = split(count, clients)
    run = uuid.uuid4().hex[:6]
    return [
        ClientJob(kind=kind, base_url=target.base_url, ca_file=target.ca_file,
                  concurrency=max(shares[index], 1), start_at=start_at, count=counts[index],
                  tag=f"{run}c{index}", token=target.token, rate=rate / clients, duration=duration,
                  tasks=tasks, callback_url=callback_url, wait_seconds=wait_seconds,
                  notice_seconds=notice_seconds,
                  progress_file=f"{progress_dir}/{run}c{index}.json" if progress_dir else "")
        for index in range(clients)
    ]
