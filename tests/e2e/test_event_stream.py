"""A task's events as Server-Sent Events (``GET /api/v2/tasks/{task}/events``), read by a real
SSE client (sseclient-py over requests, as a browser's EventSource reads a stream): one event
per change in order, closed after the final one, resumed with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sseclient

from cpe_devkit.client import Client
from cpe_devkit.probes import component_total
from cpe_devkit.stack import Stack
from tests.support.platforms import FAILING_ID
from tests.support.task_routes import client_fixture, client_of, detail, module_platform

STREAM_SECONDS = 20  # no stream of these tests lasts longer (the client's read timeout)
KEEPALIVE_SECONDS = 0.3
MAX_STREAM_SECONDS = 5  # SSE_MAX_STREAM_SECONDS of the idle platform

# Service B and the stub only: tasks stay pending, streams stay quiet.
idle_platform = module_platform("events-idle", only=("stub", "api"),
                                SSE_KEEPALIVE_SECONDS=str(KEEPALIVE_SECONDS),
                                SSE_MAX_STREAM_SECONDS=str(MAX_STREAM_SECONDS))
idle_client = client_fixture("idle_platform")


def equipment() -> str:
    return f"SSE{uuid.uuid4().hex[:10]}"


def events_url(stack: Stack, task_id: str) -> str:
    return f"{stack.api_url}/api/v2/tasks/{task_id}/events"


def open_stream(stack: Stack, task_id: str, last_event_id: str | None = None) -> requests.Response:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return requests.get(events_url(stack, task_id), headers=headers, stream=True,
                        verify=str(stack.ca_file), timeout=STREAM_SECONDS)


def read_events(stack: Stack, task_id: str, *, last_event_id: str | None = None,
                stop_after: int | None = None) -> list[sseclient.Event]:
    """The stream's events until it ends (or ``stop_after`` of them, then hang up)."""
    return read_timed_events(stack, task_id, last_event_id=last_event_id, stop_after=stop_after)[0]


def read_timed_events(stack: Stack, task_id: str, *, last_event_id: str | None = None,
                      stop_after: int | None = None) -> tuple[list[sseclient.Event], float]:
    """``read_events``, and how long the stream stayed open after its last event."""
    with open_stream(stack, task_id, last_event_id) as response:
        assert response.status_code == 200, response.text
        events: list[sseclient.Event] = []
        last = time.monotonic()
        for event in sseclient.SSEClient(response.iter_content(chunk_size=None)).events():
            events.append(event)
            last = time.monotonic()
            if stop_after is not None and len(events) == stop_after:
                break
        return events, time.monotonic() - last


def data(event: sseclient.Event) -> dict[str, Any]:
    document = json.loads(event.data)
    assert isinstance(document, dict)
    return document


async def test_the_stream_sends_each_change_in_order_and_ends_after_the_final_one(
    platform: Stack, client: Client,
) -> None:
    _, created = await client.create(equipment())
    task_id = created["taskId"]
    events, open_after_last = await asyncio.to_thread(read_timed_events, platform, task_id)
    assert open_after_last < 1  # ended by the final event
    assert [event.event for event in events] == ["pending", "running", "attempt", "completed"]
    assert [data(event)["type"] for event in events] == ["pending", "running", "attempt", "completed"]
    assert {data(event)["taskId"] for event in events} == {task_id}
    ids = [str(event.id) for event in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(part) for part in i.split("-")))
    assert len(set(ids)) == len(ids)
    assert data(events[2]) | {"at": None} == {
        "taskId": task_id, "type": "attempt", "at": None, "attempt": 1, "outcome": "success"}
    _, task = await detail(client, task_id)
    assert data(events[-1]) == {"taskId": task_id, "type": "completed", "at": task["finishedAt"],
                                "status": "completed", "attempts": 1, "failureReason": None}


async def test_a_failing_task_streams_every_attempt_and_its_failure(
    platform: Stack, client: Client,
) -> None:
    _, created = await client.create(FAILING_ID)
    events = await asyncio.to_thread(read_events, platform, created["taskId"])
    # The e2e platform makes two attempts (SERVICE_A_ATTEMPTS=2).
    assert [event.event for event in events] == ["pending", "running", "attempt", "attempt", "failed"]
    assert [data(event)["attempt"] for event in events[2:4]] == [1, 2]
    assert data(events[-1])["failureReason"] == "service_a_unavailable"


async def test_a_client_that_reconnects_with_last_event_id_gets_only_what_it_missed(
    platform: Stack, client: Client,
) -> None:
    _, created = await client.create(equipment())
    task_id = created["taskId"]
    first = await asyncio.to_thread(read_events, platform, task_id, stop_after=1)
    assert [event.event for event in first] == ["pending"]
    rest = await asyncio.to_thread(read_events, platform, task_id, last_event_id=first[0].id)
    assert [event.event for event in rest] == ["running", "attempt", "completed"]
    everything = await asyncio.to_thread(read_events, platform, task_id)
    assert [event.id for event in everything] == [first[0].id, *(event.id for event in rest)]


async def test_a_final_task_with_nothing_left_to_send_answers_204(
    platform: Stack, client: Client,
) -> None:
    """204 tells an EventSource to stop reconnecting."""
    _, created = await client.create(equipment())
    events = await asyncio.to_thread(read_events, platform, created["taskId"])
    with open_stream(platform, created["taskId"], events[-1].id) as response:
        assert response.status_code == 204


def test_the_stream_has_the_event_stream_headers_and_a_retry_hint(idle_platform: Stack) -> None:
    task_id = asyncio.run(create_one(idle_platform))
    with open_stream(idle_platform, task_id) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in response.headers
        raw = b"".join(response.iter_content(chunk_size=None)).decode()
    assert raw.startswith("retry: 2000\n\n")


def test_a_quiet_stream_sends_keep_alive_comments_then_ends_at_its_limit(idle_platform: Stack) -> None:
    task_id = asyncio.run(create_one(idle_platform))
    started = time.monotonic()
    with open_stream(idle_platform, task_id) as response:
        raw = b"".join(response.iter_content(chunk_size=None)).decode()
    lasted = time.monotonic() - started
    assert MAX_STREAM_SECONDS <= lasted < MAX_STREAM_SECONDS + 3  # then the client resumes
    assert raw.count(": keep-alive\n\n") >= MAX_STREAM_SECONDS / KEEPALIVE_SECONDS / 2
    assert raw.count("event: pending") == 1


async def create_one(stack: Stack) -> str:
    async with client_of(stack) as client:
        _, created = await client.create(equipment())
        return str(created["taskId"])


@pytest.mark.parametrize("last_event_id", [
    "soon", "1-2-3", "-1", "1" * 30 + "-0",
    f"{2**64}-0",  # a part past Redis's 64 bits
    f"{2**64 - 1}-{2**64 - 1}",  # the very last id, after which Redis reads nothing
])
def test_a_malformed_last_event_id_is_a_400(idle_platform: Stack, last_event_id: str) -> None:
    task_id = asyncio.run(create_one(idle_platform))
    with open_stream(idle_platform, task_id, last_event_id) as response:
        assert (response.status_code, response.json()) == (
            400, {"code": 400, "message": "Last-Event-ID must be an event id this stream sent"})


def test_an_unknown_task_is_a_404(idle_platform: Stack) -> None:
    for task_id in (str(uuid.uuid4()), "not-a-task"):
        with open_stream(idle_platform, task_id) as response:
            assert (response.status_code, response.json()) == (
                404, {"code": 404, "message": "The requested task is not found"})


@pytest.fixture
def streams_gauge(idle_platform: Stack) -> Iterator[Any]:
    def streams() -> float:
        return component_total(idle_platform.environment, "api", "provisioning_api_event_streams")
    yield streams


def test_a_stream_whose_client_hangs_up_is_released(
    idle_platform: Stack, streams_gauge: Any,
) -> None:
    task_id = asyncio.run(create_one(idle_platform))
    response = open_stream(idle_platform, task_id)
    chunks = response.iter_content(chunk_size=None)  # kept: dropping it closes the connection
    assert next(chunks).startswith(b"retry:")
    assert streams_gauge() == 1
    response.close()
    deadline = time.monotonic() + MAX_STREAM_SECONDS / 2  # well before the stream's own limit
    while streams_gauge() != 0:
        assert time.monotonic() < deadline, "the stream outlived its client"
        time.sleep(0.05)
