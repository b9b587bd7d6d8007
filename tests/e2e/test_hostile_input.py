"""Hostile and unusual input: each gets a precise, documented answer and changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cpe_devkit.client import Client
from cpe_devkit.client import request_body as body
from cpe_devkit.stack import Stack

TASK_NOT_FOUND = {"code": 404, "message": "The requested task is not found"}
EQUIPMENT_NOT_FOUND = {"code": 404, "message": "The requested equipment is not found"}


async def task_keys(platform: Stack) -> set[bytes]:
    redis = aioredis.Redis.from_url(platform.environment["REDIS_URL"])
    try:
        prefix = platform.environment["REDIS_KEY_PREFIX"]
        return {key async for key in redis.scan_iter(match=f"{prefix}task:*")}
    finally:
        await redis.aclose()


def with_parameters(**changes: Any) -> dict[str, Any]:
    payload = body()
    payload["parameters"].update(changes)
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"timeoutInSeconds": "14", "parameters": body()["parameters"]}, "timeoutInSeconds must be a positive integer"),
        ({"parameters": body()["parameters"]}, "timeoutInSeconds is required"),
        (with_parameters(username="\u0000"), None),
        # API_MAX_INTERFACE_NUMBER (2147483647 by default) bounds an interface number, an
        # integral float such as 1e308 included.
        (with_parameters(interfaces=[1e308]), "parameters.interfaces[0] must be at most 2147483647"),
        (with_parameters(vlan=None, interfaces=[2**70]), "parameters.interfaces[0] must be at most 2147483647"),
        ([body()], "Request body must be a JSON object"),
        ({"timeoutInSeconds": 14, "parameters": "admin:admin"}, "parameters must be a JSON object"),
    ],
)
async def test_wrong_types_and_odd_values_get_a_precise_answer_and_store_nothing_when_refused(
    client: Client, platform: Stack, payload: Any, message: str | None
) -> None:
    before = await task_keys(platform)
    status, answer = await client.create(f"HOSTILE{uuid.uuid4().hex[:6]}", payload)
    if message is None:  # valid after all (control characters are allowed)
        assert status == 200
        return
    assert (status, answer) == (400, {"code": 400, "message": message})
    assert await task_keys(platform) == before


@pytest.mark.parametrize("raw", [b"\x00\x01\x02", "ünïcödé ☃".encode(), b"null", b"[]" * 1000])
async def test_non_json_or_non_object_bodies_are_refused_with_400(client: Client, raw: bytes) -> None:
    status, answer = await client.create("HOSTILE001", raw=raw)
    assert status == 400
    assert answer["code"] == 400 and answer["message"]


@pytest.mark.parametrize(
    "equipment_id",
    ["a" * 5, "abc%00def", "abc%2Fdef123", "%E2%98%83%E2%98%83%E2%98%83%E2%98%83%E2%98%83%E2%98%83", "-" * 8],
)
async def test_malformed_equipment_ids_are_not_found(client: Client, equipment_id: str) -> None:
    assert await client.create(equipment_id) == (404, EQUIPMENT_NOT_FOUND)


async def test_a_very_long_url_is_refused_without_a_server_error(client: Client) -> None:
    async with client.session.get(f"{client.base}/api/v1/equipment/cpe/{'A' * 20_000}/task/x") as response:
        assert response.status < 500


@pytest.mark.parametrize("task_id", ["1", "null", "..%2F..%2Fetc%2Fpasswd", "%00", "0" * 400, str(uuid.uuid4()).replace("-", "")])
async def test_task_ids_that_are_not_uuids_are_not_found(client: Client, task_id: str) -> None:
    assert await client.status("ABCDEF123", task_id) == (404, TASK_NOT_FOUND)
