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


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests
    statuses: Counter[str] = field(default_factory=Counter)  # HTTP status or exception name
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (equipment id, task id) created
    first: float = 0.0
    last: float = 0.0
    max_lag: float = 0.0  # rate: how late the generator started a request, at worst
    cpu_seconds: float = 0.0


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
              now: float | None = None) -> list[ClientJob]:
    """One job per client process, the concurrency, count and rate shared between them. They
    start together a little later, once every client has opened its connections."""
    start_at = (time.time() if now is None else now) + 2.0 + concurrency / 200
    shares = split(concurrency, clients)
    counts = split(count, clients)
    run = uuid.uuid4().hex[:6]
    return [
        ClientJob(kind=kind, base_url=target.base_url, ca_file=target.ca_file,
                  concurrency=max(shares[index], 1), start_at=start_at, count=counts[index],
                  tag=f"{run}c{index}", token=target.token, rate=rate / clients, duration=duration,
                  tasks=tasks)
        for index in range(clients)
    ]
