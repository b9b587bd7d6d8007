"""Long-poll on the classic status route: ``GET …/task/{task}?wait=<seconds>``.

After Google's ``WaitOperation``: the answer comes as soon as the task is final, or when
``wait`` seconds have passed, and it is always the classic GET's answer for the task as it is
then (best effort: it may come early, never later than the wait). ``wait`` is a number of
seconds (``10``, ``2.5``), capped at ``STATUS_MAX_WAIT_SECONDS``; without it the route answers
at once, as it always did. The waiter registers before it reads the record, is woken by the
process's subscription (``waiters``), and reads the record once more when its time is up,
so a dropped notice costs at most the wait, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import re

from sanic import HTTPResponse

from ..errors import InvalidRequest, TaskNotFound
from ..models import TaskRecord
from . import contract
from .context import ServiceContext, ServiceRequest

WAIT_PARAMETER = "wait"
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")


def parse_wait(request: ServiceRequest, cap: float) -> float | None:
    """The wait asked for, capped; None without one; ``InvalidRequest`` for a bad one."""
    values = request.get_args(keep_blank_values=True).getlist(WAIT_PARAMETER, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("wait must be given at most once")
    if _SECONDS.fullmatch(values[0]) is None:
        raise InvalidRequest("wait must be a number of seconds such as 10 or 2.5 "
                             f"(at most {cap:g}; longer waits are cut to it)")
    return min(float(values[0]), cap)


async def long_poll(ctx: ServiceContext, equipment_id: str, task_id: str, wait: float) -> HTTPResponse:
    metrics = ctx.metrics.completion
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with ctx.waiters.watch(task_id, final_only=True) as watch:
        metrics.long_polls.inc()
        try:
            while True:
                record = await _record_of(ctx, equipment_id, task_id)
                remaining = deadline - loop.time()
                if record.status.is_final or remaining <= 0:
                    outcome = "final" if record.status.is_final else "timeout"
                    metrics.long_poll_answers.labels(outcome=outcome).inc()
                    return contract.task_status(record)
                await watch.wait(remaining)
        finally:
            metrics.long_polls.dec()


async def _record_of(ctx: ServiceContext, equipment_id: str, task_id: str) -> TaskRecord:
    record = await ctx.store.get(task_id, equipment_id)
    if record is None or record.equipment_id != equipment_id:
        raise TaskNotFound()
    return record
