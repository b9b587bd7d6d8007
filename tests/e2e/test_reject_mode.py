"""EQUIPMENT_CONCURRENCY=reject on the create side: one unfinished task per device, on real processes."""

from __future__ import annotations

import asyncio
import uuid

from cpe_devkit.client import Client
from cpe_devkit.probes import component_total
from cpe_devkit.stack import Stack
from tests.support.task_routes import client_fixture, client_of, history, module_platform

BUSY_MESSAGE = "Equipment already has a task in progress"
COMPLETED = {"code": 200, "message": "Completed"}


def equipment() -> str:
    return f"REJ{uuid.uuid4().hex[:10]}"


def busy(task_id: str) -> tuple[int, dict[str, object]]:
    return 409, {"code": 409, "message": BUSY_MESSAGE, "taskId": task_id}


reject_platform = module_platform("reject", EQUIPMENT_CONCURRENCY="reject", STUB_DELAY_SECONDS="1")
client = client_fixture("reject_platform")


async def test_a_create_for_a_device_with_an_unfinished_task_answers_409_naming_it(
    client: Client,
) -> None:
    equipment_id = equipment()
    _, first = await client.create(equipment_id)
    assert await client.create(equipment_id) == busy(first["taskId"])


async def test_a_refused_create_leaves_no_task(client: Client) -> None:
    equipment_id = equipment()
    _, first = await client.create(equipment_id)
    await client.create(equipment_id)
    _, page = await history(client, equipment_id)
    assert [task["taskId"] for task in page["tasks"]] == [first["taskId"]]


async def test_the_device_takes_a_new_task_once_its_task_finished(client: Client) -> None:
    equipment_id = equipment()
    _, first = await client.create(equipment_id)
    assert await client.final_status(equipment_id, first["taskId"]) == (200, COMPLETED)
    status, second = await client.create(equipment_id)
    assert status == 200 and second["taskId"] != first["taskId"]


async def test_concurrent_creates_for_one_device_accept_exactly_one(client: Client) -> None:
    equipment_id = equipment()
    answers = await asyncio.gather(*(client.create(equipment_id) for _ in range(20)))
    accepted = [answer["taskId"] for status, answer in answers if status == 200]
    assert len(accepted) == 1
    assert [answer for status, answer in answers if status != 200] == [busy(accepted[0])[1]] * 19


async def test_a_refused_create_is_counted_as_equipment_busy(
    client: Client, reject_platform: Stack
) -> None:
    name = "provisioning_api_equipment_busy_total"
    before = component_total(reject_platform.environment, "api", name)
    equipment_id = equipment()
    await client.create(equipment_id)
    await client.create(equipment_id)
    assert component_total(reject_platform.environment, "api", name) == before + 1


async def test_in_the_default_parallel_mode_one_device_takes_several_tasks(platform: Stack) -> None:
    async with client_of(platform) as parallel:
        equipment_id = equipment()
        answers = await asyncio.gather(*(parallel.create(equipment_id) for _ in range(3)))
    assert [status for status, _ in answers] == [200, 200, 200]
