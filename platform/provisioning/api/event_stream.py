"""A task's events as Server-Sent Events: ``GET /api/v2/tasks/{task}/events``.

Per the WHATWG HTML standard's event streams (``text/event-stream``, UTF-8): each event of
the task's log (``task_events``) is sent as

    id: <stream id>
    event: <pending | running | attempt | completed | failed | cancelled>
    data: <one line of JSON: taskId, type, at, and attempt/outcome or status/attempts/failureReason>

then a blank line. The stream starts with ``retry:`` (the reconnection delay), sends a comment
line (``: keep-alive``) after ``SSE_KEEPALIVE_SECONDS`` without an event, and ends after the
final event, or after ``SSE_MAX_STREAM_SECONDS`` (the client reconnects and resumes). A client
that reconnects with ``Last-Event-ID`` gets only the events after that one: the log keeps the
task's last ``TASK_EVENT_LOG_LIMIT`` events for the task's TTL. A task that is final and has
nothing left to send answers 204, which tells an EventSource to stop reconnecting. An unknown
task is 404, a malformed ``Last-Event-ID`` 400. ``Cache-Control: no-cache`` and
``X-Accel-Buffering: no`` keep proxies from buffering the stream. A stream counts against
``API_MAX_WAITERS``.
"""

from __future__ import annotations

import asyncio
import json

from sanic import HTTPResponse, empty

from ..errors import InvalidRequest, TaskNotFound
from ..task_events import TaskEvent, is_event_id
from ..task_view import timestamp
from .context import ServiceContext, ServiceRequest
from .waiters import Watch

CONTENT_TYPE = "text/event-stream; charset=utf-8"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RECONNECT_MILLISECONDS = 2000
KEEPALIVE = ": keep-alive\n\n"


def last_event_id(request: ServiceRequest) -> str | None:
    """The ``Last-Event-ID`` a reconnecting client sends; None when absent or empty."""
    value = str(request.headers.get("last-event-id", "")).strip(" \t")
    if not value:
        return None
    if not is_event_id(value):
        raise InvalidRequest("Last-Event-ID must be an event id this stream sent")
    return value


def encode(task_id: str, event: TaskEvent) -> str:
    data = json.dumps(event.to_json(task_id, timestamp(event.at)), separators=(",", ":"))
    return f"id: {event.event_id}\nevent: {event.type.value}\ndata: {data}\n\n"


async def stream_events(request: ServiceRequest, task_id: str) -> HTTPResponse | None:
    ctx = request.app.ctx
    after = last_event_id(request)
    # Registered before the first read: an event landing in between still wakes the stream.
    with ctx.waiters.watch(task_id, final_only=False) as watch:
        record = await ctx.store.get(task_id)  # through the task's index: the id is all we know
        if record is None:
            raise TaskNotFound()
        equipment_id = record.equipment_id
        events = await _events(ctx, task_id, equipment_id, after)
        if record.status.is_final and not events:
            return empty(status=204)
        response = await request.respond(headers=HEADERS, content_type=CONTENT_TYPE)
        ctx.metrics.completion.streams.inc()
        try:
            await _stream(ctx, response, task_id, equipment_id, events, after, watch)
        finally:
            ctx.metrics.completion.streams.dec()
        await response.eof()
    return None


async def _stream(ctx: ServiceContext, response: HTTPResponse, task_id: str, equipment_id: str,
                  events: list[TaskEvent], after: str | None, watch: Watch) -> None:
    """Send ``events``, then every later one as it comes, until the final one or the deadline."""
    settings = ctx.settings.completion
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.max_stream_seconds
    await response.send(f"retry: {RECONNECT_MILLISECONDS}\n\n")
    while True:
        for event in events:
            await response.send(encode(task_id, event))
            after = event.event_id
            if event.type.is_final:
                return
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        if not await watch.wait(min(settings.keepalive_seconds, remaining)):
            await response.send(KEEPALIVE)
            events = []
            continue
        events = await _events(ctx, task_id, equipment_id, after)


async def _events(ctx: ServiceContext, task_id: str, equipment_id: str, after: str | None
                  ) -> list[TaskEvent]:
    return [TaskEvent.from_stream(event_id, fields)
            for event_id, fields in await ctx.store.events(task_id, after=after,
                                                           equipment_id=equipment_id)]
