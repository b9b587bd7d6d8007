"""GET /api/v2/tasks/{task} and GET /api/v2/equipment/{id}/tasks on real processes."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from cpe_devkit.client import DEVICE_PASSWORD, Client
from cpe_devkit.stack import Stack
from tests.support.otlp import OtlpReceiver, wait_for_trace
from tests.support.platforms import FAILING_ID
from tests.support.task_routes import (
    client_fixture,
    client_of,
    detail,
    dump_run_keys,
    history,
    module_platform,
)

HISTORY_LIMIT = 3
TASK_NOT_FOUND = {"code": 404, "message": "The requested task is not found"}
DETAIL_FIELDS = {"taskId", "equipmentId", "status", "failureReason", "createdAt", "runningAt",
                 "finishedAt", "cancelRequestedAt", "cancelRequested", "attempts", "traceId"}


def equipment() -> str:
    return f"HST{uuid.uuid4().hex[:10]}"


def instant(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text)


history_platform = module_platform("history", EQUIPMENT_HISTORY_LIMIT=str(HISTORY_LIMIT))
client = client_fixture("history_platform")


async def finished(client: Client, equipment_id: str) -> str:
    _, created = await client.create(equipment_id)
    await client.final_status(equipment_id, created["taskId"])
    return str(created["taskId"])


async def test_the_detail_of_a_completed_task_has_every_field(client: Client) -> None:
    equipment_id = equipment()
    task_id = await finished(client, equipment_id)
    status, answer = await detail(client, task_id)
    assert status == 200
    assert set(answer) == DETAIL_FIELDS
    assert (answer["taskId"], answer["equipmentId"], answer["status"]) == (task_id, equipment_id,
                                                                          "completed")
    assert (answer["failureReason"], answer["cancelRequested"], answer["cancelRequestedAt"]) == (
        None, False, None)
    assert answer["attempts"] == 1
    assert instant(answer["createdAt"]) <= instant(answer["runningAt"]) <= instant(answer["finishedAt"])
    assert answer["traceId"] is None  # tracing is off: nothing exported


async def test_the_detail_of_a_failed_task_names_the_reason_and_the_attempts(client: Client) -> None:
    task_id = await finished(client, FAILING_ID)
    _, answer = await detail(client, task_id)
    assert (answer["status"], answer["failureReason"], answer["attempts"]) == (
        "failed", "service_a_unavailable", 2)  # SERVICE_A_ATTEMPTS of the end-to-end runs


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "42"])
async def test_the_detail_of_an_unknown_task_answers_404(client: Client, task_id: str) -> None:
    assert await detail(client, task_id) == (404, TASK_NOT_FOUND)


async def test_no_record_nor_history_in_redis_holds_the_device_password(
    client: Client, history_platform: Stack
) -> None:
    equipment_id = equipment()
    task_id = await finished(client, equipment_id)
    dumped = await dump_run_keys(history_platform.environment)
    assert task_id in dumped and equipment_id in dumped  # the record and the history are there
    assert DEVICE_PASSWORD not in dumped


async def test_the_history_lists_a_device_s_tasks_newest_first_through_the_cursor(
    client: Client,
) -> None:
    equipment_id = equipment()
    ids = [await finished(client, equipment_id) for _ in range(HISTORY_LIMIT)]
    listed: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    pages = 0
    while True:
        status, page = await history(client, equipment_id, params)
        assert status == 200 and len(page["tasks"]) <= 2
        listed += [task["taskId"] for task in page["tasks"]]
        pages += 1
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]
    assert listed == ids[::-1]
    assert pages == 2


async def test_the_history_keeps_only_the_newest_tasks_up_to_its_limit(client: Client) -> None:
    equipment_id = equipment()
    ids = [await finished(client, equipment_id) for _ in range(HISTORY_LIMIT + 2)]
    _, page = await history(client, equipment_id, {"limit": "100"})
    assert [task["taskId"] for task in page["tasks"]] == ids[::-1][:HISTORY_LIMIT]
    assert page["nextCursor"] is None


async def test_the_history_of_a_device_without_tasks_is_empty(client: Client) -> None:
    assert await history(client, equipment()) == (200, {"tasks": [], "nextCursor": None})


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": "0"}, "limit must be an integer from 1 to 100"),
    ({"limit": "101"}, "limit must be an integer from 1 to 100"),
    ({"limit": "-1"}, "limit must be an integer from 1 to 100"),
    ({"limit": "ten"}, "limit must be an integer from 1 to 100"),
    ({"limit": ""}, "limit must be an integer from 1 to 100"),
    ({"cursor": "not a cursor"}, "cursor is not a cursor this API returned"),
    ({"cursor": "MTIzOm5vdC1hLXV1aWQ"}, "cursor is not a cursor this API returned"),  # 123:not-a-uuid
    ({"cursor": "A" * 129}, "cursor is not a cursor this API returned"),
    ({"cursor": ""}, "cursor is not a cursor this API returned"),
])
async def test_a_bad_limit_or_cursor_answers_400_saying_which(
    client: Client, params: dict[str, str], message: str
) -> None:
    assert await history(client, equipment(), params) == (400, {"code": 400, "message": message})


async def test_a_repeated_limit_answers_400(client: Client) -> None:
    url = f"{client.base}/api/v2/equipment/{equipment()}/tasks?limit=1&limit=2"
    async with client.session.get(url) as response:
        assert (response.status, await response.json()) == (
            400, {"code": 400, "message": "limit must be given at most once"})


async def test_the_history_of_a_bad_equipment_id_answers_404(client: Client) -> None:
    assert await history(client, "bad-id") == (
        404, {"code": 404, "message": "The requested equipment is not found"})


async def test_the_detail_names_the_create_s_trace_when_tracing_is_on(
    traced_platform: Stack, receiver: tuple[OtlpReceiver, int]
) -> None:
    async with client_of(traced_platform) as traced:
        equipment_id = equipment()
        _, created = await traced.create(equipment_id)
        await traced.final_status(equipment_id, created["taskId"])
        _, answer = await detail(traced, created["taskId"])
    spans = await wait_for_trace(receiver[0], created["taskId"], {"service-b", "worker"})
    trace_ids: set[Any] = {span.trace_id for span in spans}
    assert answer["traceId"] in trace_ids
