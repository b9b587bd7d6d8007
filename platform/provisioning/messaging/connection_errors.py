"""What aiormq and the network raise when a connection or channel is gone."""

from __future__ import annotations

import asyncio

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

CONNECTION_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, asyncio.TimeoutError)


def cancelled_here() -> bool:
    """Whether the current task itself is being cancelled (a client hang-up, a shutdown), as
    opposed to an aiormq future it awaited: aiormq cancels those when it gives a connection up
    (a missed heartbeat), which is a connection error, not a cancellation of ours."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
