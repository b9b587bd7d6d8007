"""The figures of the ``notice`` phase (pure): how soon, at what cost and how surely each way
of learning a task's end (polling, long-poll, SSE, webhooks) tells the client.

The completion-notice latency of a task is the moment its final status reached the client (for
webhooks: the receiver) minus the record's ``finished_at``, when the platform wrote the final
status. A task created but whose final status never reached its client is lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from .figures import MIB, ms, percentile
from .jobs import JobKind


class NoticeMode(StrEnum):
    POLL = "poll"
    LONG_POLL = "long-poll"
    SSE = "sse"
    WEBHOOK = "webhook"


NOTICE_MODES = tuple(NoticeMode)
# The client job of each mode: waiters of their own, or plain creates naming a callbackUrl.
MODE_JOBS = {NoticeMode.POLL: JobKind.POLL, NoticeMode.LONG_POLL: JobKind.LONG_POLL,
             NoticeMode.SSE: JobKind.SSE, NoticeMode.WEBHOOK: JobKind.SUBMIT}
HELD_CONNECTION_MODES = frozenset({NoticeMode.LONG_POLL, NoticeMode.SSE})
# Long-polls and streams held per client process: a connection is a file (the limit is
# 20,000 per process here) and a few tens of KiB of TLS state.
WAITERS_PER_CLIENT = 5000

# The targets (issue 10).
CPU_SHARE_OF_POLLING = 0.5  # long-poll's Service B CPU per task at most half of polling's
P99_TARGET_MS = {NoticeMode.LONG_POLL: 100.0, NoticeMode.SSE: 100.0, NoticeMode.WEBHOOK: 500.0}

# How each mode names a final status, as the record's status value.
FINAL_STATUS_NAMES = {
    "Completed": "completed", "Task was cancelled": "cancelled",
    "Internal provisioning exception": "failed", "The requested equipment is not found": "failed",
    "completed": "completed", "failed": "failed", "cancelled": "cancelled",
    "task.completed": "completed", "task.failed": "failed", "task.cancelled": "cancelled",
}


def client_processes(mode: NoticeMode, held: int, clients: int) -> int:
    """Client processes for ``held`` waiting clients: enough that none holds more than
    ``WAITERS_PER_CLIENT`` connections, and at least ``clients``."""
    if mode not in HELD_CONNECTION_MODES:
        return clients
    return max(clients, math.ceil(held / WAITERS_PER_CLIENT))


def notice_outcome(created: Sequence[str], notices: Mapping[str, tuple[float, str]],
                   finished: Mapping[str, tuple[float | None, str]]) -> dict[str, Any]:
    """Counts and latencies of one run. ``notices``: task id -> (received at, the status as
    the client learnt it); ``finished``: task id -> (the record's ``finished_at``, status)."""
    latencies: list[float] = []
    lost = mismatched = not_final = 0
    for task_id in created:
        finished_at, status = finished.get(task_id, (None, "missing"))
        if finished_at is None:
            not_final += 1
        notice = notices.get(task_id)
        if notice is None:
            lost += 1
            continue
        received_at, told = notice
        if FINAL_STATUS_NAMES.get(told, told) != status:
            mismatched += 1
        if finished_at is not None:
            latencies.append(received_at - finished_at)
    return {
        "created": len(created),
        "noticed": len(created) - lost,
        "lost": lost,
        "not_final": not_final,  # the platform itself never finished them in time
        "mismatched": mismatched,  # the client learnt another final status than the record's
        "notice_p50_ms": ms(percentile(latencies, 0.50)) if latencies else None,
        "notice_p99_ms": ms(percentile(latencies, 0.99)) if latencies else None,
        "notice_max_ms": ms(max(latencies)) if latencies else None,
    }


def per_task_ms(cpu_seconds: Mapping[str, float], group: str, tasks: int) -> float | None:
    return round(1000 * cpu_seconds.get(group, 0.0) / tasks, 2) if tasks else None


def kib_per_waiter(rss: tuple[int, int] | None, waiters: int) -> float | None:
    """What each waiting client added to a group's RSS: (peak - first) / waiters."""
    if rss is None or not waiters:
        return None
    first, peak = rss
    return round((peak - first) / 1024 / waiters, 2)


def mib(value: int) -> float:
    return round(value / MIB, 1)


def targets(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, bool | None]:
    """The issue's targets for one run, None where a target does not apply (or its other run
    is missing): ``cpu`` long-poll at most half of polling's Service B CPU per task at the same
    N, ``p99`` under the mode's bound, ``lost`` none."""
    mode = NoticeMode(row["mode"])
    verdicts: dict[str, bool | None] = {"cpu": None, "p99": None, "lost": row["outcome"]["lost"] == 0}
    if mode is NoticeMode.LONG_POLL:
        polling = [other for other in rows if other["mode"] == NoticeMode.POLL and other["n"] == row["n"]]
        ours, theirs = row["api_cpu_ms_per_task"], polling[0]["api_cpu_ms_per_task"] if polling else None
        if ours is not None and theirs is not None:
            verdicts["cpu"] = ours <= CPU_SHARE_OF_POLLING * theirs
    if mode in P99_TARGET_MS:
        p99 = row["outcome"]["notice_p99_ms"]
        verdicts["p99"] = p99 is not None and p99 < P99_TARGET_MS[mode]
    return verdicts
