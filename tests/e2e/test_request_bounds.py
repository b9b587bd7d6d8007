"""A create's body over real HTTPS: bounded, read as strict JSON, and (opt-in) only as JSON.

Every refusal is a 400 (415) that says what is wrong, names the bound, never shows the
interpreter's internals, and stores nothing; the OpenAPI document states the same bounds.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cpe_devkit.client import Client, create_path
from cpe_devkit.client import request_body as body
from cpe_devkit.stack import Stack
from tests.support.task_routes import client_fixture, client_of, dump_run_keys, module_platform

NOT_JSON = {"code": 415, "message": "Content-Type must be application/json"}
EQUIPMENT_NOT_FOUND = {"code": 404, "message": "The requested equipment is not found"}
STRICT_MAX_INTERFACES = 4
STRICT_MAX_TIMEOUT_SECONDS = 60


# Service B alone (nothing here needs a task to run): only application/json, lower bounds.
strict_platform = module_platform("strict", only=("api",),
                                  API_REQUIRE_JSON_CONTENT_TYPE="true",
                                  API_MAX_INTERFACES=str(STRICT_MAX_INTERFACES),
                                  API_MAX_TIMEOUT_SECONDS=str(STRICT_MAX_TIMEOUT_SECONDS))
strict_client = client_fixture("strict_platform")


def device() -> str:
    return f"BOUNDS{uuid.uuid4().hex[:8]}"


def raw_body(timeout: str = "14", interfaces: str = "[1, 2, 3, 4]", extra: str = "") -> bytes:
    """A create body with these JSON literals spliced in, as a client wrote them."""
    return (f'{{"timeoutInSeconds": {timeout}, {extra}"parameters": {{"username": "admin", '
            f'"password": "admin", "interfaces": {interfaces}}}}}').encode()


async def post(client: Client, equipment_id: str, raw: bytes, content_type: str | None
               ) -> tuple[int, dict[str, Any]]:
    """POST ``raw`` with exactly this Content-Type (none at all for None)."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with client.session.post(f"{client.base}{create_path(equipment_id)}", data=raw,
                                   headers=headers,
                                   skip_auto_headers=["Content-Type"]) as response:
        return response.status, await response.json()


async def task_keys(stack: Stack) -> set[bytes]:
    redis = aioredis.Redis.from_url(stack.environment["REDIS_URL"])
    try:
        prefix = stack.environment["REDIS_KEY_PREFIX"]
        return {key async for key in redis.scan_iter(match=f"{prefix}task:*")}
    finally:
        await redis.aclose()


async def openapi(client: Client) -> dict[str, Any]:
    async with client.session.get(f"{client.base}/openapi.json") as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


def create_operation(document: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"]["/api/v1/equipment/cpe/{equipment_id}"]["post"]
    return operation


def body_schema(document: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = create_operation(document)["requestBody"]["content"][
        "application/json"]["schema"]
    return schema


# -- bounds and strict JSON (on by default) ----------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (raw_body(timeout="3601"), "timeoutInSeconds must be at most 3600"),
        (raw_body(timeout="9" * 400), "timeoutInSeconds must be at most 3600"),
        (raw_body(timeout="9" * 4301), "timeoutInSeconds must be at most 3600"),
        (raw_body(timeout="1e400"), "timeoutInSeconds must be at most 3600"),
        (raw_body(timeout="1.5"), "timeoutInSeconds must be a positive integer"),
        (raw_body(interfaces=f"[1, {'7' * 4000}]"),
         "parameters.interfaces[1] must be at most 2147483647"),
        (raw_body(interfaces=json.dumps([1] * 30_000, separators=(",", ":"))),
         "parameters.interfaces must have at most 1024 entries"),
        (b'{"timeoutInSeconds": -5, "timeoutInSeconds": 1, "parameters": {}}',
         'Request body has the key "timeoutInSeconds" more than once in one object'),
        (raw_body(extra='"other": {"x": 1, "x": 2}, '),
         'Request body has the key "x" more than once in one object'),
        (raw_body(timeout="NaN"), "Request body is not valid JSON: NaN is not a JSON number"),
        (raw_body(timeout="-Infinity"),
         "Request body is not valid JSON: -Infinity is not a JSON number"),
    ],
)
async def test_absurd_or_ambiguous_input_gets_a_400_naming_the_problem_and_stores_nothing(
    client: Client, platform: Stack, raw: bytes, message: str
) -> None:
    before = await task_keys(platform)
    assert await post(client, device(), raw, "application/json") == (
        400, {"code": 400, "message": message})
    assert await task_keys(platform) == before


async def test_no_refusal_shows_the_interpreters_internals(client: Client) -> None:
    _, answer = await post(client, device(), raw_body(timeout="1" * 5000), "application/json")
    assert "sys" not in answer["message"] and "digits" not in answer["message"]


async def test_an_equipment_id_longer_than_128_characters_is_not_found_and_stored_nowhere(
    client: Client, platform: Stack
) -> None:
    long_id = "A" * 7000
    assert await client.create(long_id) == (404, EQUIPMENT_NOT_FOUND)
    assert long_id[:129] not in await dump_run_keys(platform.environment)
    status, answer = await client.create("A" * 128)
    assert (status, answer["code"]) == (200, 200)


async def test_an_integral_number_is_an_integer_all_the_way_to_service_a(client: Client) -> None:
    """The stub takes only JSON integers (``1`` but not ``1.0``), so a task that completes was
    forwarded with the integers the body's ``14.0``, ``81421.0`` and ``2e0`` stand for."""
    equipment_id = device()
    status, answer = await post(client, equipment_id,
                                raw_body(timeout="14.0", interfaces="[81421.0, 2e0]"),
                                "application/json")
    assert status == 200, answer
    assert await client.final_status(equipment_id, answer["taskId"]) == (
        200, {"code": 200, "message": "Completed"})


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
async def test_by_default_a_json_body_is_taken_whatever_its_content_type_says(
    client: Client, content_type: str | None
) -> None:
    status, answer = await post(client, device(), raw_body(), content_type)
    assert (status, answer["code"]) == (200, 200)


async def test_the_openapi_document_states_the_default_bounds_and_no_415(client: Client) -> None:
    document = await openapi(client)
    properties = body_schema(document)["properties"]
    parameters = properties["parameters"]["properties"]
    assert properties["timeoutInSeconds"]["maximum"] == 3600
    assert parameters["interfaces"]["maxItems"] == 1024
    assert parameters["interfaces"]["items"]["maximum"] == 2_147_483_647
    assert parameters["username"]["maxLength"] == parameters["password"]["maxLength"] == 256
    equipment_id = create_operation(document)["parameters"][0]
    assert equipment_id["schema"]["maxLength"] == 128
    assert "415" not in create_operation(document)["responses"]


async def test_the_openapi_document_links_a_create_to_every_operation_on_its_task(
    client: Client
) -> None:
    document = await openapi(client)
    links = create_operation(document)["responses"]["200"]["links"]
    operation_ids = {operation["operationId"] for item in document["paths"].values()
                     for operation in item.values()}
    assert {link["operationId"] for link in links.values()} == operation_ids - {"createTask"}
    assert links["WaitForTask"]["parameters"]["query.wait"] == "1"
    for link in links.values():
        assert link["parameters"].get("task_id", "$response.body#/taskId") == (
            "$response.body#/taskId")


# -- API_REQUIRE_JSON_CONTENT_TYPE=true and bounds set below the defaults ----------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/json-patch+json", "application/jsonx", None])
async def test_a_body_not_sent_as_json_is_refused_with_415_and_stores_nothing(
    strict_client: Client, strict_platform: Stack, content_type: str | None
) -> None:
    before = await task_keys(strict_platform)
    assert await post(strict_client, device(), raw_body(), content_type) == (415, NOT_JSON)
    assert await task_keys(strict_platform) == before


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"])
async def test_json_with_or_without_parameters_is_taken(strict_client: Client,
                                                        content_type: str) -> None:
    status, answer = await post(strict_client, device(), raw_body(), content_type)
    assert (status, answer["code"]) == (200, 200)


async def test_two_content_types_are_refused_with_415(strict_platform: Stack) -> None:
    async with client_of(strict_platform) as client:
        async with client.session.post(
            f"{client.base}{create_path(device())}", data=raw_body(),
            headers=[("Content-Type", "application/json"), ("Content-Type", "text/plain")],
            skip_auto_headers=["Content-Type"],
        ) as response:
            assert (response.status, await response.json()) == (415, NOT_JSON)


async def test_the_bounds_are_the_ones_set_and_the_document_says_so(strict_client: Client) -> None:
    too_many = list(range(1, STRICT_MAX_INTERFACES + 2))
    status, answer = await strict_client.create(device(), body(interfaces=tuple(too_many)))
    assert (status, answer["message"]) == (
        400, f"parameters.interfaces must have at most {STRICT_MAX_INTERFACES} entries")
    status, answer = await strict_client.create(
        device(), body(timeout_seconds=STRICT_MAX_TIMEOUT_SECONDS + 1))
    assert (status, answer["message"]) == (
        400, f"timeoutInSeconds must be at most {STRICT_MAX_TIMEOUT_SECONDS}")
    document = await openapi(strict_client)
    properties = body_schema(document)["properties"]
    assert properties["timeoutInSeconds"]["maximum"] == STRICT_MAX_TIMEOUT_SECONDS
    assert properties["parameters"]["properties"]["interfaces"]["maxItems"] == STRICT_MAX_INTERFACES
    assert create_operation(document)["responses"]["415"]["content"]["application/json"][
        "schema"]["properties"]["message"]["const"] == NOT_JSON["message"]
