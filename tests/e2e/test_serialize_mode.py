"""EQUIPMENT_CONCURRENCY=serialize: a device's tasks run one after another, in creation order,
while other devices' tasks run beside them; on real processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from itertools import pairwise
from typing import Any

from cpe_devkit.client import DEVICE_PASSWORD, Client
from cpe_devkit.probes import component_total, queue_state
from cpe_devkit.stack import Stack
from provisioning.messaging.topology import parking_queue
from tests.support.task_routes import (
    cancel,
    client_fixture,
    detail,
    dump_run_keys,
    module_platform,
    wait_for_status,
)

STUB_DELAY = 1.0
MAX_WAITING = 4
COMPLETED = {"code": 200, "message": "Completed"}
ACCEPTED = {"code": 202, "message": "Task cancellation accepted"}
# A hand-over is two Redis scripts and two broker round trips: well under this.
HAND_OVER_SLACK = 0.75

serialize_platform = module_platform("serialize", EQUIPMENT_CONCURRENCY="serialize",
                                     STUB_DELAY_SECONDS=str(STUB_DELAY),
                                     EQUIPMENT_MAX_WAITING=str(MAX_WAITING))
client = client_fixture("serialize_platform")


def equipment() -> str:
    return f"SER{uuid.uuid4().hex[:10]}"


def moment(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def metric(stack: Stack, component: str, name: str) -> float:
    return component_total(stack.environment, component, name)


async def create_one_after_another(client: Client, equipment_id: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        status, answer = await client.create(equipment_id)
        assert status == 200, answer
        ids.append(answer["taskId"])
    return ids


async def details(client: Client, task_ids: list[str]) -> list[dict[str, Any]]:
    return [answer for _, answer in await asyncio.gather(*(detail(client, task) for task in task_ids))]


async def finished(client: Client, equipment_id: str, task_ids: list[str], timeout: float) -> None:
    answers = await asyncio.gather(*(client.final_status(equipment_id, task, timeout=timeout)
                                     for task in task_ids))
    assert answers == [(200, COMPLETED)] * len(task_ids)


async def test_one_devices_tasks_run_one_after_another_in_creation_order_beside_other_devices(
    client: Client, serialize_platform: Stack,
) -> None:
    device, others = equipment(), [equipment() for _ in range(3)]
    overlaps_before = metric(serialize_platform, "stub",
                             "equipment_stub_overlapping_calls_total")
    queued, *other_answers = await asyncio.gather(
        create_one_after_another(client, device, 5),
        *(client.create(other) for other in others))
    other_created = time.time()
    assert [status for status, _ in other_answers] == [200, 200, 200]

    await finished(client, device, queued, timeout=5 * STUB_DELAY + 20)
    await asyncio.gather(*(finished(client, other, [answer["taskId"]], timeout=20)
                           for other, (_, answer) in zip(others, other_answers, strict=True)))

    tasks = sorted(await details(client, queued), key=lambda task: moment(task["createdAt"]))
    assert [task["taskId"] for task in tasks] == queued
    for before, after in pairwise(tasks):
        assert moment(after["runningAt"]) >= moment(before["finishedAt"])
    assert moment(tasks[-1]["finishedAt"]) - moment(tasks[0]["createdAt"]) >= 5 * STUB_DELAY
    for task in await details(client, [answer["taskId"] for _, answer in other_answers]):
        # Not behind the busy device: about one stub delay after their creation.
        assert moment(task["finishedAt"]) - moment(task["createdAt"]) < STUB_DELAY + 2.0
        assert moment(task["finishedAt"]) < other_created + STUB_DELAY + 2.0
    assert metric(serialize_platform, "stub",
                  "equipment_stub_overlapping_calls_total") == overlaps_before


async def test_a_cancelled_waiting_task_frees_its_turn_and_never_reaches_service_a(
    client: Client, serialize_platform: Stack,
) -> None:
    device = equipment()
    answers_before = metric(serialize_platform, "stub", "equipment_stub_answers_total")
    first, second, third = await create_one_after_another(client, device, 3)
    assert await cancel(client, device, second) == (202, ACCEPTED)

    await finished(client, device, [first, third], timeout=20)
    one, two, three = await details(client, [first, second, third])
    assert two["status"] == "cancelled" and two["runningAt"] is None and not two["attempts"]
    gap = moment(three["runningAt"]) - moment(one["finishedAt"])
    assert 0 <= gap < HAND_OVER_SLACK
    assert metric(serialize_platform, "stub",
                  "equipment_stub_answers_total") == answers_before + 2


async def test_a_waiting_tasks_credentials_wait_on_the_broker_never_in_redis(
    client: Client, serialize_platform: Stack,
) -> None:
    device = equipment()
    first, second = await create_one_after_another(client, device, 2)
    environment = serialize_platform.environment
    _, waiting = await detail(client, second)
    assert waiting["status"] == "pending"
    messages, consumers = await queue_state(environment["AMQP_URL"],
                                            parking_queue(environment["TASKS_QUEUE"], second))
    assert (messages, consumers) == (1, 0)  # its message waits there, held by no worker
    dumped = await dump_run_keys(environment)
    assert second in dumped and DEVICE_PASSWORD not in dumped
    await finished(client, device, [first, second], timeout=20)


async def test_past_the_waiting_bound_a_create_answers_409_naming_the_running_task(
    client: Client, serialize_platform: Stack,
) -> None:
    device = equipment()
    busy_before = metric(serialize_platform, "api",
                         "provisioning_api_equipment_busy_total")
    accepted = await create_one_after_another(client, device, 1 + MAX_WAITING)
    assert await client.create(device) == (409, {
        "code": 409, "message": "Equipment has too many tasks waiting", "taskId": accepted[0]})
    assert metric(serialize_platform, "api",
                  "provisioning_api_equipment_busy_total") == busy_before + 1
    await wait_for_status(client, accepted[1], "running", timeout=STUB_DELAY + 10)
    status, answer = await client.create(device)  # one place freed: accepted again
    assert status == 200
    await finished(client, device, [*accepted, answer["taskId"]], timeout=6 * STUB_DELAY + 20)


async def test_parks_and_hand_overs_are_counted_with_their_wait(
    client: Client, serialize_platform: Stack,
) -> None:
    def api(name: str) -> float:
        return metric(serialize_platform, "api", name)

    before = {name: api(name) for name in (
        "provisioning_api_equipment_parked_total", "provisioning_api_equipment_handed_over_total",
        "provisioning_api_equipment_wait_seconds_count", "provisioning_api_equipment_wait_seconds_sum",
        "provisioning_api_equipment_waiting_depth_count")}
    device = equipment()
    tasks = await create_one_after_another(client, device, 3)
    await finished(client, device, tasks, timeout=30)
    assert api("provisioning_api_equipment_parked_total") == before[
        "provisioning_api_equipment_parked_total"] + 2
    assert api("provisioning_api_equipment_waiting_depth_count") == before[
        "provisioning_api_equipment_waiting_depth_count"] + 2
    assert api("provisioning_api_equipment_handed_over_total") == before[
        "provisioning_api_equipment_handed_over_total"] + 2
    assert api("provisioning_api_equipment_wait_seconds_count") == before[
        "provisioning_api_equipment_wait_seconds_count"] + 2
    waited = api("provisioning_api_equipment_wait_seconds_sum") - before[
        "provisioning_api_equipment_wait_seconds_sum"]
    assert waited >= 3 * STUB_DELAY  # the second waited one call, the third two
