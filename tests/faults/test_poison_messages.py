"""Fault 5: poison and duplicated messages on the queues.

A message a consumer cannot act on (not JSON, JSON nested too deeply to decode, not the
schema, a task that has no record, larger than ``MAX_MESSAGE_BYTES``) is rejected to
``{queue}.dead`` at once, not retried, and the consumer goes on with the next message. A result or a task that arrives again for a task already final changes nothing and
does not call Service A again.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from cpe_devkit.client import request_body as body
from provisioning import names
from provisioning.models import (
    FailureReason,
    ResultMessage,
    TaskMessage,
    TaskStatus,
    parse_provisioning_request,
)

from .harness import FaultPlatform, PlatformFactory
from .ledger import Ledger, equipment

COMPLETED = "200 200 Completed"
DEAD_LETTER_SECONDS = 10
DEAD_LETTERED = "provisioning_messages_dead_lettered_total"
MAX_MESSAGE_BYTES = 64 * 1024
MALFORMED = [
    b"\x00\xffnot json at all",
    json.dumps({"taskId": 42, "status": ["completed"]}).encode(),  # JSON, not the schema
    b"[" * 5_000 + b"]" * 5_000,  # json.loads raises RecursionError, not JSONDecodeError
]
OVERSIZED = b"x" * (MAX_MESSAGE_BYTES + 1)


def a_task(task_id: str | None = None, equipment_id: str | None = None) -> bytes:
    return TaskMessage(task_id or str(uuid.uuid4()), equipment_id or equipment(),
                       parse_provisioning_request(body()), time.time()).encode()


def a_result(task_id: str | None = None, equipment_id: str | None = None,
             status: TaskStatus = TaskStatus.COMPLETED) -> bytes:
    failure = FailureReason.REJECTED_BY_SERVICE_A if status is TaskStatus.FAILED else None
    return ResultMessage(task_id or str(uuid.uuid4()), equipment_id or equipment(), status,
                         failure, 1, time.time()).encode()


async def one_task_completes(platform: FaultPlatform, ledger: Ledger) -> str:
    [task_id] = await ledger.create_many(platform.client, 1)
    await ledger.settle(platform.statuses, timeout=20)
    assert ledger.statuses[task_id] == "completed"
    return task_id


async def task_record(platform: FaultPlatform, task_id: str) -> dict[str, Any]:
    client = aioredis.Redis.from_url(platform.redis.url, decode_responses=True)
    try:
        prefix = platform.environment["REDIS_KEY_PREFIX"]
        equipment_id = str(await client.get(f"{prefix}{names.TASK_DEVICE_KEY}{task_id}"))
        key = f"{prefix}{names.TASK_KEY}{{{equipment_id}}}:{task_id}"
        return {str(name): value for name, value in (await client.hgetall(key)).items()}
    finally:
        await client.aclose()


@pytest.mark.parametrize(("queue_variable", "consumer"),
                         [("TASKS_QUEUE", "worker"), ("RESULTS_QUEUE", "api")],
                         ids=["tasks-queue", "results-queue"])
@pytest.mark.timeout(60)
async def test_poison_is_dead_lettered_at_once_and_the_consumer_keeps_going(
    start_platform: PlatformFactory, ledger: Ledger, queue_variable: str, consumer: str
) -> None:
    platform = await start_platform(MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
                                    QUEUE_DELIVERY_LIMIT="20")
    queue = platform.environment[queue_variable]
    unknown_task = a_task() if queue_variable == "TASKS_QUEUE" else a_result()
    poison = [*MALFORMED, unknown_task, OVERSIZED]
    for message in poison:
        await platform.publish(queue, message)

    dead = await platform.take_dead_letters(queue, len(poison), timeout=DEAD_LETTER_SECONDS)
    calls = await platform.stub_answers("success")
    await one_task_completes(platform, ledger)
    depths = await platform.wait_queues_empty(timeout=10)
    reasons = {reason: int(await platform.counter(consumer, DEAD_LETTERED, queue=queue, reason=reason))
               for reason in ("malformed", "unknown_task", "too_large")}
    ledger.note(poison_published=len(poison), dead_lettered=len(dead), dead_letter_reasons=reasons)

    assert sorted(dead) == sorted(poison)
    assert reasons == {"malformed": len(MALFORMED), "unknown_task": 1, "too_large": 1}, (
        "a poison message was retried (requeued) before it was dead-lettered")
    assert calls == 0, "Service A was called for a poison message"
    assert (ledger.completed, ledger.lost) == (1, {})
    assert {q: (d.ready, d.unacked) for q, d in depths.items()} == dict.fromkeys(platform.queues, (0, 0))


@pytest.mark.timeout(60)
async def test_a_duplicated_result_changes_nothing(start_platform: PlatformFactory, ledger: Ledger) -> None:
    platform = await start_platform()
    task_id = await one_task_completes(platform, ledger)
    equipment_id = ledger.accepted[task_id]
    before = await task_record(platform, task_id)

    queue = platform.environment["RESULTS_QUEUE"]
    duplicates = [a_result(task_id, equipment_id), a_result(task_id, equipment_id),
                  a_result(task_id, equipment_id, TaskStatus.FAILED)]
    for message in duplicates:
        await platform.publish(queue, message)
    seen = await platform.wait_counter("api", "provisioning_results_total", len(duplicates),
                                       timeout=10, outcome="duplicate")
    depths = await platform.wait_queues_empty(timeout=10)
    ledger.note(duplicates_published=len(duplicates), duplicates_seen=int(seen))

    assert await task_record(platform, task_id) == before
    assert await ledger.answers(platform.client) == {COMPLETED: 1}
    assert {q: (d.ready, d.unacked) for q, d in depths.items()} == dict.fromkeys(platform.queues, (0, 0))


@pytest.mark.timeout(60)
async def test_a_duplicated_task_for_a_finished_task_does_not_call_service_a_again(
    start_platform: PlatformFactory, ledger: Ledger
) -> None:
    platform = await start_platform()
    task_id = await one_task_completes(platform, ledger)
    calls = await platform.stub_answers("success")
    before = await task_record(platform, task_id)

    await platform.publish(platform.environment["TASKS_QUEUE"], a_task(task_id, ledger.accepted[task_id]))
    acked = await platform.wait_counter("worker", "provisioning_worker_tasks_total", 1, timeout=10,
                                        outcome="already_final")
    depths = await platform.wait_queues_empty(timeout=10)
    ledger.note(duplicates_published=1, acked_as_already_final=int(acked))

    assert await platform.stub_answers("success") == calls == 1
    assert await task_record(platform, task_id) == before
    assert {q: (d.ready, d.unacked) for q, d in depths.items()} == dict.fromkeys(platform.queues, (0, 0))
