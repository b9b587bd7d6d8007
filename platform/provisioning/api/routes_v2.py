"""Service B's v2 routes: one task's detail, and a device's recent tasks (an addition; the
classic v1 contract is unchanged). Same guards as v1: bearer tokens, the in-flight limit.

    GET /api/v2/tasks/{task}                 the task's detail (404 as the classic GET)
    GET /api/v2/tasks/{task}/events          its events as Server-Sent Events (``event_stream``)
    GET /api/v2/equipment/{id}/tasks         newest first, ``?limit=`` 1..100 (20), ``?cursor=``

Timestamps are ISO-8601 UTC strings with milliseconds (``2026-12-01T09:28:19.123Z``). The
cursor is opaque to clients (base64url of the last item's creation time and id, after
AIP-158's page tokens): a page may hold fewer items than asked when records expired, and
``nextCursor`` is null on the last page. Nothing here ever holds a credential: the record has
none.
"""

from __future__ import annotations

import base64
import binascii
import math
import re

from sanic import Blueprint, HTTPResponse, json

from ..errors import InvalidRequest, TaskNotFound
from ..models import check_equipment_id, check_task_id
from ..task_view import task_detail
from ..telemetry.tracing import annotate
from .context import ServiceRequest
from .event_stream import stream_events

tasks_v2 = Blueprint("tasks_v2", url_prefix="/api/v2")

PAGE_DEFAULT = 20
PAGE_MAX = 100
CURSOR_MAX_CHARS = 128
_DIGITS = re.compile(r"[0-9]{1,4}")


def encode_cursor(after: tuple[float, str]) -> str:
    raw = f"{after[0]!r}:{after[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor names; ``InvalidRequest`` for anything this API did not make."""
    problem = InvalidRequest("cursor is not a cursor this API returned")
    if not cursor or len(cursor) > CURSOR_MAX_CHARS:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        score_text, task_id = raw.split(":")
        score = float(score_text)
        canonical = check_task_id(task_id)
    except (binascii.Error, ValueError, UnicodeDecodeError, TaskNotFound):
        raise problem from None
    if not math.isfinite(score) or canonical != task_id:
        raise problem
    return score, task_id


def _one(request: ServiceRequest, name: str) -> str | None:
    values = request.get_args(keep_blank_values=True).getlist(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"{name} must be given at most once")
    return values[0] if values else None


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return PAGE_DEFAULT
    if _DIGITS.fullmatch(raw) is None or not 1 <= int(raw) <= PAGE_MAX:
        raise InvalidRequest(f"limit must be an integer from 1 to {PAGE_MAX}")
    return int(raw)


@tasks_v2.get("/tasks/<task_id:str>")
async def task_detail_route(request: ServiceRequest, task_id: str) -> HTTPResponse:
    with request.app.ctx.in_flight.admit():
        annotate(**{"task.id": task_id})
        record = await request.app.ctx.store.get(check_task_id(task_id))
        if record is None:
            raise TaskNotFound()
        return json(task_detail(record))


@tasks_v2.get("/tasks/<task_id:str>/events")
async def task_events_route(request: ServiceRequest, task_id: str) -> HTTPResponse | None:
    """The task's events as Server-Sent Events (``event_stream``)."""
    annotate(**{"task.id": task_id})
    return await stream_events(request, check_task_id(task_id))


@tasks_v2.get("/equipment/<equipment_id:str>/tasks")
async def equipment_tasks(request: ServiceRequest, equipment_id: str) -> HTTPResponse:
    with request.app.ctx.in_flight.admit():
        check_equipment_id(equipment_id)
        annotate(**{"equipment.id": equipment_id})
        limit = parse_limit(_one(request, "limit"))
        cursor = _one(request, "cursor")
        after = None if cursor is None else decode_cursor(cursor)
        page = await request.app.ctx.store.history(equipment_id, limit=limit, after=after)
        return json({
            "tasks": [task_detail(record) for record in page.records],
            "nextCursor": None if page.next_after is None else encode_cursor(page.next_after),
        })
