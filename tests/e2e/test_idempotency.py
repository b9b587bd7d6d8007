"""Idempotent creates with ``Idempotency-Key``, against the real processes over HTTPS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDict

from cpe_devkit.client import DEVICE_PASSWORD, Client, client_session, create_path
from cpe_devkit.client import request_body as body
from cpe_devkit.ports import free_port
from cpe_devkit.stack import Stack, throwaway_stack
from provisioning.idempotency import KeyRecord, KeyState
from provisioning.idempotency_key import NO_CALLER, fingerprint, scope_digest
from provisioning.models import parse_provisioning_request
from tests.support.otlp import OtlpReceiver
from tests.support.platforms import e2e_environment
from tests.support.task_routes import run_keys

COMPLETED = {"code": 200, "message": "Completed"}
STILL_RUNNING = {"code": 204, "message": "Task is still running"}
INTERNAL = {"code": 500, "message": "Internal provisioning exception"}
MISMATCH = {"code": 422, "message": "Idempotency-Key was already used with a different request body"}
IN_PROGRESS = {"code": 409, "message": "A request with this Idempotency-Key is still being processed"}
TOKENS = ("idem-token-a", "idem-token-b")
POST_SPAN = "POST /api/v1/equipment/cpe/<equipment_id>"



def equipment() -> str:
    return f"IDEM{uuid.uuid4().hex[:10]}"


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: dict[str, Any]


async def post(session: aiohttp.ClientSession, base: str, equipment_id: str, key: str | None,
               payload: Any = None, *, headers: list[tuple[str, str]] | None = None) -> Answer:
    """POST a create with ``Idempotency-Key: key`` (as a structured-field string), or the given
    ``headers``."""
    sent = CIMultiDict(headers or ([("Idempotency-Key", f'"{key}"')] if key else []))
    async with session.post(f"{base}{create_path(equipment_id)}", headers=sent,
                            json=body() if payload is None else payload) as response:
        return Answer(response.status, CIMultiDict(response.headers), await response.json())


async def create(client: Client, equipment_id: str, key: str | None, payload: Any = None,
                 **options: Any) -> Answer:
    return await post(client.session, client.base, equipment_id, key, payload, **options)


@pytest.fixture
async def redis(platform: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(platform.environment["REDIS_URL"], decode_responses=True)
    yield client
    await client.aclose()


def key_record_name(stack: Stack, equipment_id: str, key: str, caller: str = NO_CALLER) -> str:
    prefix = stack.environment["REDIS_KEY_PREFIX"]
    return f"{prefix}idempotency:{scope_digest(caller, equipment_id, key)}"


async def tasks_of(redis: aioredis.Redis, stack: Stack, equipment_id: str) -> set[str]:
    """The task ids of every record in the store created for ``equipment_id``."""
    prefix = f"{stack.environment['REDIS_KEY_PREFIX']}task:{{{equipment_id}}}:"
    found = set()
    async for name in redis.scan_iter(match=f"{prefix}*", count=1000):
        if await redis.hget(name, "equipment_id") == equipment_id:
            found.add(name.removeprefix(prefix))
    return found


# -- replays --------------------------------------------------------------------------------

async def test_the_same_key_and_body_answer_the_same_task_id_while_running_and_once_completed(
    client: Client
) -> None:
    equipment_id, key = equipment(), new_key()
    first = await create(client, equipment_id, key)
    assert first.status == 200 and "Idempotent-Replayed" not in first.headers
    task_id = first.body["taskId"]
    assert await client.status(equipment_id, task_id) == (200, STILL_RUNNING)
    while_running = await create(client, equipment_id, key)
    assert await client.final_status(equipment_id, task_id) == (200, COMPLETED)
    once_completed = await create(client, equipment_id, key)
    for replay in (while_running, once_completed):
        assert (replay.status, replay.body) == (200, {"code": 200, "taskId": task_id})
        assert replay.headers["Idempotent-Replayed"] == "true"


async def test_a_bare_key_and_a_reordered_body_are_the_same_request(client: Client) -> None:
    equipment_id, key = equipment(), new_key()
    first = await create(client, equipment_id, key)
    reordered = {"parameters": dict(reversed(body()["parameters"].items())), "timeoutInSeconds": 14,
                 "ignored": True}
    again = await create(client, equipment_id, None, reordered, headers=[("Idempotency-Key", key)])
    assert (again.status, again.body) == (200, first.body)


async def test_the_same_key_with_another_body_answers_422(client: Client) -> None:
    equipment_id, key = equipment(), new_key()
    assert (await create(client, equipment_id, key)).status == 200
    other = await create(client, equipment_id, key, body(vlan=535))
    assert (other.status, other.body) == (422, MISMATCH)


async def test_a_repeat_while_the_first_request_is_claimed_answers_409_retry_after_1(
    client: Client, platform: Stack, redis: aioredis.Redis
) -> None:
    equipment_id, key = equipment(), new_key()
    await _hold_claim(redis, platform, equipment_id, key)
    again = await create(client, equipment_id, key)
    assert (again.status, again.body) == (409, IN_PROGRESS)
    assert again.headers["Retry-After"] == "1"


async def test_another_body_while_the_first_request_is_claimed_answers_422_not_409(
    client: Client, platform: Stack, redis: aioredis.Redis
) -> None:
    equipment_id, key = equipment(), new_key()
    await _hold_claim(redis, platform, equipment_id, key)
    other = await create(client, equipment_id, key, body(interfaces=(7,)))
    assert (other.status, other.body) == (422, MISMATCH)


async def _hold_claim(redis: aioredis.Redis, stack: Stack, equipment_id: str, key: str) -> None:
    """Write the claim a first request holds between its claim and its answer."""
    claimed = KeyRecord(KeyState.CLAIMED, fingerprint(parse_provisioning_request(body()), None),
                        str(uuid.uuid4()))
    await redis.set(key_record_name(stack, equipment_id, key), claimed.encode(), ex=60)


async def test_fifty_concurrent_first_requests_with_one_key_create_exactly_one_task(
    client: Client, platform: Stack, redis: aioredis.Redis
) -> None:
    equipment_id, key = equipment(), new_key()
    answers = await asyncio.gather(*(create(client, equipment_id, key) for _ in range(50)))
    assert await tasks_of(redis, platform, equipment_id) == {
        answer.body["taskId"] for answer in answers if answer.status == 200}
    assert len(await tasks_of(redis, platform, equipment_id)) == 1
    for answer in answers:
        if answer.status == 409:
            assert (answer.body, answer.headers["Retry-After"]) == (IN_PROGRESS, "1")
        else:
            assert answer.status == 200


# -- refusals store nothing -----------------------------------------------------------------

@pytest.mark.parametrize(("header", "message"), [
    ('"unterminated', "Idempotency-Key is not a valid structured-field string"),
    ("k" * 256, "Idempotency-Key must be 1 to 255 printable ASCII characters"),
    ('""', "Idempotency-Key must be 1 to 255 printable ASCII characters"),
])
async def test_a_malformed_key_answers_400_saying_why(client: Client, header: str, message: str) -> None:
    answer = await create(client, equipment(), None, headers=[("Idempotency-Key", header)])
    assert (answer.status, answer.body) == (400, {"code": 400, "message": message})


async def test_two_idempotency_key_headers_answer_400(client: Client) -> None:
    answer = await create(client, equipment(), None,
                          headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    assert (answer.status, answer.body) == (
        400, {"code": 400, "message": "Idempotency-Key must be sent at most once"})


async def test_a_request_refused_by_validation_stores_no_key(
    client: Client, platform: Stack, redis: aioredis.Redis
) -> None:
    equipment_id, key = equipment(), new_key()
    invalid = body(interfaces=())
    assert (await create(client, equipment_id, key, invalid)).status == 400
    assert await redis.exists(key_record_name(platform, equipment_id, key)) == 0
    assert (await create(client, equipment_id, key)).status == 200  # the key is still free


@pytest.fixture
def unqueueable_api(cert_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    """Service B alone, whose RabbitMQ address leads nowhere."""
    environment = e2e_environment(cert_dir, API_METRICS_PORT="0", REDIS_TIMEOUT_SECONDS="1")
    environment["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with throwaway_stack(environment, tmp_path / "broken", only=("api",), ready_timeout=30,
                         healthy=False) as stack:
        yield stack


async def test_a_create_that_ends_in_500_releases_the_key_and_a_retry_creates(
    unqueueable_api: Stack, cert_dir: Path, tmp_path: Path
) -> None:
    equipment_id, key = equipment(), new_key()
    async with client_session(unqueueable_api.ca_file) as session:
        failed = await post(session, unqueueable_api.api_url, equipment_id, key)
    assert (failed.status, failed.body) == (500, INTERNAL)
    redis = aioredis.Redis.from_url(unqueueable_api.environment["REDIS_URL"])
    try:
        assert await redis.exists(key_record_name(unqueueable_api, equipment_id, key)) == 0
    finally:
        await redis.aclose()
    healthy = {**unqueueable_api.environment, "API_PORT": str(free_port()),
               "AMQP_URL": e2e_environment(cert_dir)["AMQP_URL"]}  # same Redis prefix, a broker
    with throwaway_stack(healthy, tmp_path / "healthy", only=("api",), ready_timeout=30) as stack:
        async with client_session(stack.ca_file) as session:
            retried = await post(session, stack.api_url, equipment_id, key)
    assert retried.status == 200 and "Idempotent-Replayed" not in retried.headers


# -- scope ----------------------------------------------------------------------------------

async def test_the_same_key_for_another_equipment_creates_another_task(client: Client) -> None:
    key = new_key()
    first, other = await create(client, equipment(), key), await create(client, equipment(), key)
    assert first.status == other.status == 200
    assert first.body["taskId"] != other.body["taskId"]


@pytest.fixture(scope="module")
def guarded_api(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    environment = e2e_environment(cert_dir, API_TOKENS=",".join(TOKENS), API_METRICS_PORT="0")
    with throwaway_stack(environment, tmp_path_factory.mktemp("guarded"), only=("api",),
                         ready_timeout=30) as stack:
        yield stack


async def test_the_same_key_from_another_token_creates_another_task(guarded_api: Stack) -> None:
    equipment_id, key = equipment(), new_key()
    answers = []
    for token in (*TOKENS, TOKENS[0]):
        async with client_session(guarded_api.ca_file, token=token) as session:
            answers.append(await post(session, guarded_api.api_url, equipment_id, key))
    first, other, again = answers
    assert first.status == other.status == again.status == 200
    assert first.body["taskId"] != other.body["taskId"]
    assert again.body == first.body  # the first token's key still replays its own task


async def test_no_token_is_stored_in_a_key_name_or_value(guarded_api: Stack) -> None:
    equipment_id, key = equipment(), new_key()
    async with client_session(guarded_api.ca_file, token=TOKENS[0]) as session:
        assert (await post(session, guarded_api.api_url, equipment_id, key)).status == 200
    stored = await run_keys(guarded_api.environment)
    assert key_record_name(guarded_api, equipment_id, key, caller=TOKENS[0]) in stored
    assert not [text for text in stored.items() if any(token in str(text) for token in TOKENS)]


# -- secrets --------------------------------------------------------------------------------

async def test_no_redis_value_under_the_prefix_holds_the_password(
    client: Client, platform: Stack
) -> None:
    equipment_id, key = equipment(), new_key()
    assert (await create(client, equipment_id, key)).status == 200
    assert (await create(client, equipment_id, key)).status == 200
    stored = await run_keys(platform.environment)
    assert key_record_name(platform, equipment_id, key) in stored  # the key's record was searched
    assert not [name for name, value in stored.items() if DEVICE_PASSWORD in value]


# -- traces -------------------------------------------------------------------------------

@pytest.fixture
def traced_api(receiver: tuple[OtlpReceiver, int], cert_dir: Path, tmp_path: Path
               ) -> Iterator[Stack]:
    environment = e2e_environment(cert_dir, API_METRICS_PORT="0", OTEL_BSP_SCHEDULE_DELAY="200",
                                  OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver[1]}")
    with throwaway_stack(environment, tmp_path, only=("api",), ready_timeout=30) as stack:
        yield stack


async def test_the_create_span_carries_the_idempotency_outcome(
    traced_api: Stack, receiver: tuple[OtlpReceiver, int]
) -> None:
    equipment_id, key = equipment(), new_key()
    async with client_session(traced_api.ca_file) as session:
        first = await post(session, traced_api.api_url, equipment_id, key)
        await post(session, traced_api.api_url, equipment_id, key)
    outcomes: list[str] = []
    for _ in range(100):
        outcomes = sorted(span.attributes.get("provisioning.idempotency.outcome", "")
                          for span in receiver[0].spans
                          if span.name == POST_SPAN and first.body["taskId"] in
                          span.attributes.get("provisioning.task.id", ""))
        if len(outcomes) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(outcomes) == 2 and '"created"' in outcomes[0] and '"replayed"' in outcomes[1]


# -- the document ---------------------------------------------------------------------------

async def test_the_openapi_document_declares_the_key_and_its_answers(client: Client) -> None:
    async with client.session.get(f"{client.base}/openapi.json") as response:
        create_operation = (await response.json())["paths"]["/api/v1/equipment/cpe/{equipment_id}"]["post"]
    header = next(p for p in create_operation["parameters"] if p["name"] == "Idempotency-Key")
    assert (header["in"], header["required"]) == ("header", False)
    answers = create_operation["responses"]
    assert "Retry-After" in answers["409"]["headers"]
    assert answers["422"]["content"]["application/json"]["schema"]["properties"]["message"]["const"] == (
        MISMATCH["message"])
    assert "Idempotent-Replayed" in answers["200"]["headers"]
