"""The ledger of a fault test: every create it sent, what Service B answered, and what became
of every task it accepted.

``sent`` counts create requests; ``accepted`` those answered 200 with a task id; ``refused``
those answered 500 (Service B could not store or queue the task); ``unanswered`` those that
got no HTTP answer at all (Service B itself down). Of the accepted tasks, ``completed`` and
``failed`` reached that final status, and ``lost`` did not reach a final status in time or
have no record any more. The figures go to ``reports/faults/<test>.json``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cpe_devkit.client import Client

FINAL = frozenset({"completed", "failed"})
SETTLE_POLL_SECONDS = 0.5
# Each task's status as the store reads it now (None where there is no record).
StatusReader = Callable[[list[str]], Awaitable[dict[str, str | None]]]


def equipment() -> str:
    return f"CPE{uuid.uuid4().hex[:10]}"


@dataclass
class Ledger:
    test: str
    accepted: dict[str, str] = field(default_factory=dict)  # task id -> equipment id
    accepted_at: dict[str, float] = field(default_factory=dict)  # task id -> monotonic time
    sent: int = 0
    refused: int = 0
    unanswered: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    slowest_refusal: float = 0.0  # seconds, of the slowest create answered 500
    answered_5xx_at: list[float] = field(default_factory=list)  # monotonic times of 500 and 503 answers
    statuses: dict[str, str | None] = field(default_factory=dict)  # after settle(); None: no record
    settled: bool = False  # whether settle() ran: the final figures mean nothing before
    notes: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    # -- sending ------------------------------------------------------------------------------

    async def create(self, client: Client, equipment_id: str | None = None) -> str | None:
        """Ask Service B for one task; the task id when it was accepted."""
        equipment_id = equipment_id or equipment()
        self.sent += 1
        asked = time.monotonic()
        try:
            status, answer = await client.create(equipment_id)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            self.unanswered += 1
            return None
        if status >= 500:
            self.answered_5xx_at.append(time.monotonic())
        if status == 200 and answer.get("code") == 200:
            self.accepted[answer["taskId"]] = equipment_id
            self.accepted_at[answer["taskId"]] = time.monotonic()
            return str(answer["taskId"])
        if (status, answer) == (500, {"code": 500, "message": "Internal provisioning exception"}):
            self.refused += 1
            self.slowest_refusal = max(self.slowest_refusal, time.monotonic() - asked)
        else:
            self.unexpected[f"{status} {answer}"] += 1
        return None

    async def create_many(self, client: Client, count: int) -> list[str]:
        """``count`` creates at once; the ids of those accepted."""
        ids = await asyncio.gather(*(self.create(client) for _ in range(count)))
        return [task_id for task_id in ids if task_id is not None]

    async def steady_load(self, client: Client, stop: asyncio.Event, *, per_second: float,
                          limit: int) -> None:
        """Creates at a steady pace until ``stop`` is set or ``limit`` were sent."""
        pending: set[asyncio.Task[str | None]] = set()
        while not stop.is_set() and self.sent + len(pending) < limit:
            task = asyncio.create_task(self.create(client))
            pending.add(task)
            task.add_done_callback(pending.discard)
            try:
                await asyncio.wait_for(stop.wait(), 1 / per_second)
            except TimeoutError:
                pass
        if pending:
            await asyncio.wait(pending, timeout=30)

    async def wait_accepted(self, count: int, timeout: float) -> None:
        """Wait until ``count`` creates in all were accepted (a load runs meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.accepted) >= count or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)

    # -- what became of them ------------------------------------------------------------------

    async def settle(self, read_statuses: StatusReader, *, timeout: float) -> None:
        """Wait until every accepted task is final in the store, or ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        self.settled = True
        while True:
            self.statuses = await read_statuses(list(self.accepted))
            if all(status in FINAL for status in self.statuses.values()):
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(SETTLE_POLL_SECONDS)

    async def answers(self, client: Client) -> Counter[str]:
        """What Service B's GET answers for every accepted task, counted by answer."""
        limit = asyncio.Semaphore(50)

        async def one(task_id: str) -> str:
            async with limit:
                status, answer = await client.status(self.accepted[task_id], task_id)
            return f"{status} {answer.get('code')} {answer.get('message')}"

        return Counter(await asyncio.gather(*(one(task_id) for task_id in self.accepted)))

    def with_status(self, status: str) -> list[str]:
        return [task_id for task_id, found in self.statuses.items() if found == status]

    @property
    def completed(self) -> int:
        return len(self.with_status("completed"))

    @property
    def failed(self) -> int:
        return len(self.with_status("failed"))

    @property
    def lost(self) -> dict[str, str | None]:
        """Accepted tasks that are not final (their status, or None when the record is gone)."""
        return {task_id: self.statuses.get(task_id) for task_id in self.accepted
                if self.statuses.get(task_id) not in FINAL}

    def note(self, **figures: Any) -> None:
        """Add figures of this fault to the report (counts, timings)."""
        self.notes.update(figures)

    def figures(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "refused_500": self.refused,
            "unanswered": self.unanswered,
            "slowest_500_seconds": round(self.slowest_refusal, 2),
            "unexpected": dict(self.unexpected),
            "completed": self.completed if self.settled else None,
            "failed": self.failed if self.settled else None,
            "lost": len(self.lost) if self.settled else None,
            **self.notes,
        }

    def write(self, directory: Path, outcome: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.test}.json"
        document = {"test": self.test, "outcome": outcome,
                    "seconds": round(time.monotonic() - self.started, 1), **self.figures()}
        path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
        return path
