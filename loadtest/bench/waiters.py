"""Waiting clients: how one client learns that its task is final, in each way Service B offers.

    poll       the classic status read every ``interval`` seconds
    long-poll  ``GET …/task/{task}?wait=<seconds>``, again at once after each "still running"
    sse        ``GET /api/v2/tasks/{task}/events`` (WHATWG Server-Sent Events), resumed with
               ``Last-Event-ID`` when the stream ends before the final event

Each returns the final status it learnt (the classic message, or the SSE event's name) and the
wall clock when it arrived, or None when the deadline passed first. Every request is counted in
``errors`` under "requests"; a failed one also under its status or exception name (a request
timed out by the client's own session is a ``TimeoutError``, one cut by the deadline is not),
and is retried after a pause, never raised: the figures say what happened.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cpe_devkit.client import status_path

STILL_RUNNING_CODE = 204
FINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
RETRY_PAUSE_SECONDS = 1.0  # after a failed request, so that an overloaded API is not hammered
REQUESTS = "requests"  # the key under which ``errors`` counts every request made
Notice = tuple[float, str]  # (wall clock when the final status arrived, the status)


def events_path(task_id: str) -> str:
    return f"/api/v2/tasks/{task_id}/events"


def final_message(status: int, body: bytes) -> str | None:
    """The classic final answer's message, or None while the task is still running (or the
    answer is not one of the contract's final ones, e.g. a 503)."""
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or status not in (200, 404, 500):
        return None
    if status == 200 and answer.get("code") == STILL_RUNNING_CODE:
        return None
    message = answer.get("message")
    return message if isinstance(message, str) else None


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SseParser:
    """The WHATWG event-stream rules that matter here: ``event:``, ``data:`` (joined by
    newlines), ``id:``, comments (``:``) ignored, an event dispatched at a blank line."""

    last_event_id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _has_fields: bool = False

    def feed(self, lines: Iterable[str]) -> list[SseEvent]:
        events: list[SseEvent] = []
        for raw in lines:
            line = raw.rstrip("\r\n")
            if not line:
                if self._has_fields:
                    events.append(SseEvent(self._event or "message", "\n".join(self._data),
                                           self.last_event_id))
                self._event, self._data, self._has_fields = "", [], False
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)
            elif name == "id":
                self.last_event_id = value
            else:
                continue
            self._has_fields = True
        return events


async def poll(session: aiohttp.ClientSession, base_url: str, equipment_id: str, task_id: str, *,
               interval: float, deadline_at: float, errors: Counter[str]) -> Notice | None:
    url = f"{base_url}{status_path(equipment_id, task_id)}"
    while time.time() < deadline_at:
        notice = await _read_final(session, url, errors, time_left=deadline_at - time.time())
        if notice is not None:
            return notice
        await asyncio.sleep(interval)
    return None


async def long_poll(session: aiohttp.ClientSession, base_url: str, equipment_id: str, task_id: str, *,
                    wait: float, deadline_at: float, errors: Counter[str]) -> Notice | None:
    url = f"{base_url}{status_path(equipment_id, task_id)}?wait={round(wait, 3):g}"  # at most three decimals
    while time.time() < deadline_at:
        failures = _failures(errors)
        notice = await _read_final(session, url, errors, time_left=deadline_at - time.time())
        if notice is not None:
            return notice
        if _failures(errors) > failures:
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
    return None


def _failures(errors: Counter[str]) -> int:
    return sum(errors.values()) - errors[REQUESTS]


async def _read_final(session: aiohttp.ClientSession, url: str, errors: Counter[str], *,
                      time_left: float) -> Notice | None:
    errors[REQUESTS] += 1
    deadline = asyncio.timeout(max(time_left, 0.001))
    try:
        async with deadline:
            async with session.get(url) as response:
                body = await response.read()
                status = response.status
    except Exception as error:  # a client-side failure is a figure, not a crash
        if deadline.expired():
            return None  # the deadline's, not a failure of the request
        errors[type(error).__name__] += 1
        return None
    message = final_message(status, body)
    if message is not None:
        return time.time(), message
    if status != 200:
        errors[str(status)] += 1
    return None


async def sse(session: aiohttp.ClientSession, base_url: str, task_id: str, *, deadline_at: float,
              errors: Counter[str]) -> Notice | None:
    url = f"{base_url}{events_path(task_id)}"
    parser = SseParser()
    while time.time() < deadline_at:
        headers = {"Accept": "text/event-stream"}
        if parser.last_event_id is not None:
            headers["Last-Event-ID"] = parser.last_event_id
        errors[REQUESTS] += 1
        deadline = asyncio.timeout(deadline_at - time.time())
        try:
            async with deadline:
                async with session.get(url, headers=headers) as response:
                    if response.status != 200:
                        errors[str(response.status)] += 1
                        await response.read()
                    else:
                        async for event in _events(response, parser):
                            if event.event in FINAL_EVENTS:
                                return time.time(), event.event
                        errors["stream ended early"] += 1
        except Exception as error:
            if deadline.expired():
                return None
            errors[type(error).__name__] += 1
        await asyncio.sleep(RETRY_PAUSE_SECONDS)
    return None


async def _events(response: aiohttp.ClientResponse, parser: SseParser) -> AsyncIterator[SseEvent]:
    async for line in response.content:
        for event in parser.feed([line.decode()]):
            yield event
