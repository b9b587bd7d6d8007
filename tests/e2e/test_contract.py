"""Every row of Service B's contract, against the real processes over HTTPS."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cpe_devkit.client import DEVICE_PASSWORD, Client, client_session
from cpe_devkit.client import request_body as body
from cpe_devkit.ports import free_port
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import FAILING_ID, UNKNOWN_ID, e2e_environment

EQUIPMENT_NOT_FOUND = {"code": 404, "message": "The requested equipment is not found"}
TASK_NOT_FOUND = {"code": 404, "message": "The requested task is not found"}
INTERNAL = {"code": 500, "message": "Internal provisioning exception"}
STILL_RUNNING = {"code": 204, "message": "Task is still running"}
COMPLETED = {"code": 200, "message": "Completed"}


def equipment() -> str:
    return f"CPE{uuid.uuid4().hex[:10]}"


# -- POST /api/v1/equipment/cpe/{id} ------------------------------------------------------

async def test_create_answers_200_with_a_uuid_task_id(client: Client) -> None:
    status, answer = await client.create(equipment())
    assert status == 200
    assert answer["code"] == 200
    assert str(uuid.UUID(answer["taskId"])) == answer["taskId"]
    assert set(answer) == {"code", "taskId"}


@pytest.mark.parametrize("bad_id", ["abc12", "abc-def-123", "%C3%A9quipement"])
async def test_create_with_a_bad_id_answers_404_equipment_not_found(client: Client, bad_id: str) -> None:
    assert await client.create(bad_id) == (404, EQUIPMENT_NOT_FOUND)


async def test_create_with_invalid_json_answers_400_saying_why(client: Client) -> None:
    status, answer = await client.create(equipment(), raw=b'{"timeoutInSeconds": 14,')
    assert status == 400
    assert answer["code"] == 400
    assert answer["message"].startswith("Request body is not valid JSON: ")


async def test_create_with_an_invalid_field_answers_400_naming_it(client: Client) -> None:
    payload = body()
    payload["parameters"]["interfaces"] = [1, -2]
    assert await client.create(equipment(), payload) == (
        400, {"code": 400, "message": "parameters.interfaces[1] must be a positive integer"})


async def test_create_with_a_body_over_the_limit_answers_413(client: Client) -> None:
    status, answer = await client.create(equipment(), raw=b" " * (128 * 1024))
    assert status == 413
    assert answer["code"] == 413


# -- GET /api/v1/equipment/cpe/{id}/task/{task} -------------------------------------------

async def test_a_new_task_is_still_running_then_completed(client: Client) -> None:
    equipment_id = equipment()
    _, created = await client.create(equipment_id)
    assert await client.status(equipment_id, created["taskId"]) == (200, STILL_RUNNING)
    assert await client.final_status(equipment_id, created["taskId"]) == (200, COMPLETED)


async def test_a_task_that_fails_in_service_a_answers_500(client: Client) -> None:
    _, created = await client.create(FAILING_ID)
    assert await client.final_status(FAILING_ID, created["taskId"]) == (500, INTERNAL)


async def test_equipment_unknown_to_service_a_answers_404_equipment_not_found(client: Client) -> None:
    _, created = await client.create(UNKNOWN_ID)
    assert await client.final_status(UNKNOWN_ID, created["taskId"]) == (404, EQUIPMENT_NOT_FOUND)


async def test_status_with_a_bad_equipment_id_answers_404_equipment_not_found(client: Client) -> None:
    assert await client.status("bad-id", str(uuid.uuid4())) == (404, EQUIPMENT_NOT_FOUND)


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "42"])
async def test_an_unknown_task_answers_404_task_not_found(client: Client, task_id: str) -> None:
    assert await client.status(equipment(), task_id) == (404, TASK_NOT_FOUND)


async def test_a_task_asked_for_under_another_equipment_answers_404_task_not_found(client: Client) -> None:
    _, created = await client.create(equipment())
    assert await client.status(equipment(), created["taskId"]) == (404, TASK_NOT_FOUND)


async def test_two_hundred_concurrent_tasks_all_complete(client: Client) -> None:
    ids = [equipment() for _ in range(200)]
    created = await asyncio.gather(*(client.create(equipment_id) for equipment_id in ids))
    assert all(status == 200 for status, _ in created)
    finals = await asyncio.gather(
        *(client.final_status(eid, answer["taskId"], timeout=60)
          for eid, (_, answer) in zip(ids, created, strict=True))
    )
    assert finals == [(200, COMPLETED)] * 200


# -- 500 when the task cannot be stored or queued ------------------------------------------

@pytest.fixture
def broken_api(cert_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A second Service B whose Redis or RabbitMQ address leads nowhere."""
    environment = e2e_environment(cert_dir)
    environment["API_PORT"] = str(free_port())
    environment["API_METRICS_PORT"] = "0"
    environment[request.param] = {
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }[request.param]
    environment["REDIS_TIMEOUT_SECONDS"] = "1"
    with throwaway_stack(environment, tmp_path, only=("api",), ready_timeout=30, healthy=False) as stack:
        yield stack


@pytest.fixture
async def broken_client(broken_api: Stack) -> AsyncIterator[Client]:
    async with client_session(broken_api.ca_file) as session:
        yield Client(session, broken_api.api_url)


@pytest.mark.parametrize("broken_api", ["AMQP_URL"], indirect=True)
async def test_create_answers_500_and_leaves_no_task_when_it_cannot_queue(
    broken_api: Stack, broken_client: Client
) -> None:
    assert await broken_client.create(equipment()) == (500, INTERNAL)
    redis = aioredis.Redis.from_url(broken_api.environment["REDIS_URL"])
    try:
        prefix = broken_api.environment["REDIS_KEY_PREFIX"]
        assert [key async for key in redis.scan_iter(match=f"{prefix}*")] == []
    finally:
        await redis.aclose()


@pytest.mark.parametrize("broken_api", ["REDIS_URL"], indirect=True)
async def test_create_and_status_answer_500_when_redis_is_unreachable(broken_client: Client) -> None:
    assert await broken_client.create(equipment()) == (500, INTERNAL)
    assert await broken_client.status(equipment(), str(uuid.uuid4())) == (500, INTERNAL)


# -- secrets --------------------------------------------------------------------------------

async def test_no_log_line_of_any_component_contains_the_device_password(
    client: Client, platform: Stack
) -> None:
    equipment_id = equipment()
    _, created = await client.create(equipment_id)
    await client.final_status(equipment_id, created["taskId"])
    assert platform.log_dir is not None
    logs = {path.name: path.read_text() for path in platform.log_dir.glob("*.log")}
    assert set(logs) == {"stub.log", "api.log", "worker.log"}
    assert created["taskId"] in logs["worker.log"]  # the logs are really captured
    for name, text in logs.items():
        assert DEVICE_PASSWORD not in text, f"{name} leaks the device password"
        for line in text.splitlines():
            if line.startswith("{"):
                json.loads(line)  # every structured line is one JSON object
