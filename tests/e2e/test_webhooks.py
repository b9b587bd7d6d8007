"""Completion webhooks on the real platform: a create with callbackUrl gets one signed POST of
its final status, retried through the delay queues, dead-lettered past the schedule, kept
across a SIGKILL of the worker pool; bad callbackUrls are refused with precise 400s."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cpe_devkit.client import Client, request_body
from cpe_devkit.probes import queue_state, take_dead_letters
from cpe_devkit.stack import Stack, throwaway_stack
from cpe_devkit.webhook_receiver import ReceivedWebhook, WebhookReceiver, new_secret
from provisioning.messaging import delay_queue
from provisioning.webhooks.notice import WebhookNotice, webhook_id
from tests.support.otlp import OtlpReceiver, ReceivedSpan, wait_for_trace
from tests.support.platforms import FAILING_ID, e2e_environment
from tests.support.task_routes import client_of, run_keys

pytestmark = pytest.mark.timeout(60)

SECRET = new_secret()
SHORT_SCHEDULE = (0.3, 0.3)


def webhook_environment(cert_dir: Path, schedule: str) -> dict[str, str]:
    return e2e_environment(
        cert_dir, WEBHOOK_ALLOWED_HOSTS="127.0.0.1", WEBHOOK_ALLOW_PRIVATE="true",
        WEBHOOK_SECRET=SECRET, WEBHOOK_CA_FILE=str(cert_dir / "ca.pem"),
        WEBHOOK_RETRY_SCHEDULE=schedule)


@pytest.fixture(scope="module")
def hooks(cert_dir: Path) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(cert_dir, SECRET) as hooks:
        yield hooks


@pytest.fixture(scope="module")
def hooked_platform(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    environment = webhook_environment(cert_dir, ",".join(map(str, SHORT_SCHEDULE)))
    with throwaway_stack(environment, tmp_path_factory.mktemp("webhooks")) as stack:
        yield stack


@pytest.fixture
async def client(hooked_platform: Stack) -> AsyncIterator[Client]:
    async with client_of(hooked_platform) as client:
        yield client


def equipment() -> str:
    return f"WHK{uuid.uuid4().hex[:10]}"


async def create_with_callback(client: Client, equipment_id: str, url: str) -> str:
    status, answer = await client.create(equipment_id, {**request_body(), "callbackUrl": url})
    assert status == 200, answer
    return str(answer["taskId"])


async def delivered(hooks: WebhookReceiver, task_id: str, timeout: float = 20) -> ReceivedWebhook:
    return await asyncio.to_thread(hooks.wait_for, webhook_id(task_id), timeout)


async def test_a_completed_task_posts_one_verified_webhook_saying_completed(
        client: Client, hooks: WebhookReceiver) -> None:
    equipment_id = equipment()
    task_id = await create_with_callback(client, equipment_id, hooks.url)
    call = await delivered(hooks, task_id)
    assert call.verified and call.attempt == 1
    assert call.webhook_id == f"msg_{uuid.UUID(task_id).hex}"
    assert call.event["type"] == "task.completed"
    assert call.data["taskId"] == task_id and call.data["status"] == "completed"
    assert call.data["equipmentId"] == equipment_id
    assert call.headers["content-type"] == "application/json"
    assert call.headers["webhook-signature"].startswith("v1,")
    assert call.timestamp.isdigit()
    await asyncio.sleep(1.0)  # no second delivery of a delivered webhook
    assert len(hooks.calls(call.webhook_id)) == 1


async def test_a_failed_task_posts_a_webhook_saying_failed(client: Client, hooks: WebhookReceiver) -> None:
    task_id = await create_with_callback(client, FAILING_ID, hooks.url)
    call = await delivered(hooks, task_id)
    assert call.verified
    assert (call.event["type"], call.data["status"]) == ("task.failed", "failed")


async def test_a_receiver_answering_500_gets_it_again_on_the_second_attempt(
        client: Client, hooks: WebhookReceiver) -> None:
    task_id = await create_with_callback(client, equipment(), hooks.url)
    hooks.answer(500, webhook_id=webhook_id(task_id))
    call = await delivered(hooks, task_id)
    first, second = hooks.calls(call.webhook_id)
    assert (first.status, second.status, second.attempt) == (500, 200, 2)
    assert second.verified and second.body == first.body  # the same event, signed anew
    assert second.received_monotonic - first.received_monotonic >= 0.8 * SHORT_SCHEDULE[0] - 0.05


async def test_past_the_schedule_the_webhook_is_dead_lettered(
        client: Client, hooks: WebhookReceiver, hooked_platform: Stack) -> None:
    task_id = await create_with_callback(client, equipment(), hooks.url)
    hooks.answer(*[503] * (len(SHORT_SCHEDULE) + 1), webhook_id=webhook_id(task_id))
    environment = hooked_platform.environment
    [dead] = await take_dead_letters(environment["AMQP_URL"], environment["WEBHOOKS_QUEUE"], 1, 20)
    notice = WebhookNotice.decode(dead)
    assert (notice.task_id, notice.attempt) == (task_id, len(SHORT_SCHEDULE) + 1)
    assert [call.status for call in hooks.calls(notice.webhook_id)] == [503] * 3


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:9/hook", "callbackUrl must start with https://"),
    ("https://hooks.example.com/hook", "callbackUrl host is not allowed on this server"),
    ("https://user:pw@127.0.0.1/hook", "callbackUrl must not carry credentials (user:password@)"),
    ("https://127.0.0.1/hook#frag", "callbackUrl must not have a fragment (#...)"),
    ("https://127.0.0.1:0/hook", "callbackUrl must name a host (and a port from 1 to 65535)"),
    (42, "callbackUrl must be a non-empty string"),
])
async def test_a_bad_callback_url_gets_a_precise_400_and_nothing_is_stored(
        client: Client, hooked_platform: Stack, url: Any, message: str) -> None:
    before = await run_keys(hooked_platform.environment)
    status, answer = await client.create(equipment(), {**request_body(), "callbackUrl": url})
    assert (status, answer) == (400, {"code": 400, "message": message})
    assert await run_keys(hooked_platform.environment) == before


async def test_a_webhook_waiting_in_its_delay_queue_survives_a_sigkill_of_the_pool(
        cert_dir: Path, hooks: WebhookReceiver, tmp_path: Path) -> None:
    environment = webhook_environment(cert_dir, "3")
    with throwaway_stack(environment, tmp_path) as stack:
        async with client_of(stack) as client:
            task_id = await create_with_callback(client, equipment(), hooks.url)
            hooks.answer(500, webhook_id=webhook_id(task_id))
            await asyncio.to_thread(hooks.wait_for, lambda call: call.webhook_id == webhook_id(task_id), 20)
            waiting = delay_queue(environment["WEBHOOKS_QUEUE"], 3)
            for _ in range(20):
                if (await queue_state(environment["AMQP_URL"], waiting))[0] == 1:
                    break
                await asyncio.sleep(0.1)
            pool_children = psutil.Process(stack.processes["worker"].pid).children()
            assert pool_children, "the pool has its worker processes"
            stack.stop_component("worker", signal.SIGKILL)
            assert await queue_state(environment["AMQP_URL"], waiting) == (1, 0)
            # Its children are told (SIGTERM at the parent's death), drain and stop: no orphan
            # consumes beside the pool started in its place. (Meanwhile the webhook's pause
            # may end: it then waits on the webhooks queue, for the new pool.)
            _, orphans = await asyncio.to_thread(psutil.wait_procs, pool_children, timeout=30)
            assert orphans == [], f"worker processes outlived their pool: {orphans}"
            stack.start_component("worker")
            call = await delivered(hooks, task_id)
    assert (call.attempt, call.verified) == (2, True)


async def test_the_delivery_is_part_of_the_tasks_trace(
        cert_dir: Path, hooks: WebhookReceiver, receiver: tuple[OtlpReceiver, int], tmp_path: Path) -> None:
    otlp, port = receiver
    environment = {**webhook_environment(cert_dir, "0.3"),
                   "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with throwaway_stack(environment, tmp_path) as stack:
        async with client_of(stack) as client:
            task_id = await create_with_callback(client, equipment(), hooks.url)
            await delivered(hooks, task_id)
        trace = await wait_for_trace(otlp, task_id, {"service-b", "worker", "service-a-stub"})
        trace_id = trace[0].trace_id
        process_name = f"process {environment['WEBHOOKS_QUEUE']}"
        delivery: list[ReceivedSpan] = []
        for _ in range(100):
            delivery = [s for s in otlp.spans if s.trace_id == trace_id and s.name == process_name]
            if delivery and any(s.parent_span_id == delivery[0].span_id for s in otlp.spans):
                break
            await asyncio.sleep(0.1)
    assert delivery and delivery[0].service == "worker", sorted({s.name for s in otlp.spans if s.trace_id == trace_id})
    [post] = [s for s in otlp.spans if s.parent_span_id == delivery[0].span_id]
    assert post.service == "worker" and post.name.startswith("POST")  # the HTTP attempt's CLIENT span
