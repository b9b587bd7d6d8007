"""DELETE /api/v1/equipment/cpe/{id}/task/{task}: cancellation after AIP-151, on real processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpe_devkit.client import Client
from cpe_devkit.probes import component_total, queue_state
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import FAILING_ID, UNKNOWN_ID, e2e_environment
from tests.support.task_routes import (
    cancel,
    client_fixture,
    client_of,
    detail,
    module_platform,
    wait_for_status,
)

ACCEPTED = {"code": 202, "message": "Task cancellation accepted"}
CANCELLED = {"code": 410, "message": "Task was cancelled"}
COMPLETED = {"code": 200, "message": "Completed"}
TASK_NOT_FOUND = {"code": 404, "message": "The requested task is not found"}
EQUIPMENT_NOT_FOUND = {"code": 404, "message": "The requested equipment is not found"}
SLOW_STUB_SECONDS = 2


def equipment() -> str:
    return f"CXL{uuid.uuid4().hex[:10]}"


# Service A answers after 2 s: long enough to cancel while the call is in flight.
slow_platform = module_platform("slow", STUB_DELAY_SECONDS=str(SLOW_STUB_SECONDS))
slow_client = client_fixture("slow_platform")
# The stub and Service B only: every task stays pending.
no_workers = module_platform("idle", only=("stub", "api"))
idle_client = client_fixture("no_workers")


@pytest.fixture
def workers_later(cert_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    """The stub and Service B now; the test starts the worker pool when it is ready."""
    environment = e2e_environment(cert_dir)
    with throwaway_stack(environment, tmp_path, only=("stub", "api")) as stack:
        yield stack


async def test_a_task_cancelled_before_its_call_is_acked_without_calling_service_a(
    workers_later: Stack,
) -> None:
    environment = dict(workers_later.environment)
    async with client_of(workers_later) as client:
        cancelled_id, kept_id = equipment(), equipment()
        _, cancelled = await client.create(cancelled_id)
        _, kept = await client.create(kept_id)
        assert await cancel(client, cancelled_id, cancelled["taskId"]) == (202, ACCEPTED)
        workers_later.start_component("worker")
        assert await client.final_status(kept_id, kept["taskId"]) == (200, COMPLETED)
        assert await client.status(cancelled_id, cancelled["taskId"]) == (200, CANCELLED)
    assert component_total(environment, "worker", "provisioning_worker_tasks_total",
                           outcome="cancelled") == 1
    assert component_total(environment, "stub", "equipment_stub_answers_total") == 1  # the kept task's
    ready, _ = await queue_state(environment["AMQP_URL"], environment["TASKS_QUEUE"])
    assert ready == 0


async def test_a_cancelled_task_answers_the_classic_get_with_code_410(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    await cancel(idle_client, equipment_id, created["taskId"])
    assert await idle_client.status(equipment_id, created["taskId"]) == (200, CANCELLED)


async def test_cancelling_a_cancelled_task_answers_200_with_the_cancelled_body(
    idle_client: Client,
) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    assert await cancel(idle_client, equipment_id, created["taskId"]) == (202, ACCEPTED)
    assert await cancel(idle_client, equipment_id, created["taskId"]) == (200, CANCELLED)


async def test_a_pending_cancel_is_counted_as_cancelled(no_workers: Stack, idle_client: Client) -> None:
    environment = dict(no_workers.environment)
    name = "provisioning_api_cancellations_total"
    before = component_total(environment, "api", name, outcome="cancelled")
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    await cancel(idle_client, equipment_id, created["taskId"])
    assert component_total(environment, "api", name, outcome="cancelled") == before + 1


async def test_a_task_cancelled_during_its_call_still_records_the_outcome(slow_client: Client) -> None:
    equipment_id = equipment()
    _, created = await slow_client.create(equipment_id)
    task_id = created["taskId"]
    await wait_for_status(slow_client, task_id, "running")
    assert await cancel(slow_client, equipment_id, task_id) == (202, ACCEPTED)
    assert await slow_client.final_status(equipment_id, task_id) == (200, COMPLETED)
    _, answer = await detail(slow_client, task_id)
    assert (answer["status"], answer["cancelRequested"], answer["attempts"]) == ("completed", True, 1)
    assert answer["runningAt"] <= answer["cancelRequestedAt"] <= answer["finishedAt"]


@pytest.mark.parametrize(("equipment_id", "body"), [
    (None, COMPLETED),
    (FAILING_ID, {"code": 500, "message": "Internal provisioning exception"}),
    (UNKNOWN_ID, EQUIPMENT_NOT_FOUND),
])
async def test_cancelling_a_finished_task_answers_200_with_its_state_and_changes_nothing(
    slow_client: Client, equipment_id: str | None, body: dict[str, object]
) -> None:
    equipment_id = equipment_id or equipment()
    _, created = await slow_client.create(equipment_id)
    await slow_client.final_status(equipment_id, created["taskId"])
    _, before = await detail(slow_client, created["taskId"])
    assert await cancel(slow_client, equipment_id, created["taskId"]) == (200, body)
    assert await detail(slow_client, created["taskId"]) == (200, before)


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "42"])
async def test_cancelling_an_unknown_task_answers_404_task_not_found(
    slow_client: Client, task_id: str
) -> None:
    assert await cancel(slow_client, equipment(), task_id) == (404, TASK_NOT_FOUND)


async def test_cancelling_under_another_equipment_id_answers_404_and_changes_nothing(
    idle_client: Client,
) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    assert await cancel(idle_client, equipment(), created["taskId"]) == (404, TASK_NOT_FOUND)
    _, answer = await detail(idle_client, created["taskId"])
    assert (answer["status"], answer["cancelRequested"]) == ("pending", False)


async def test_cancelling_with_a_bad_equipment_id_answers_404_equipment_not_found(
    idle_client: Client,
) -> None:
    assert await cancel(idle_client, "bad-id", str(uuid.uuid4())) == (404, EQUIPMENT_NOT_FOUND)


async def test_concurrent_cancels_of_one_pending_task_cancel_it_once(idle_client: Client) -> None:
    equipment_id = equipment()
    _, created = await idle_client.create(equipment_id)
    answers = await asyncio.gather(*(cancel(idle_client, equipment_id, created["taskId"])
                                     for _ in range(10)))
    assert sorted(status for status, _ in answers) == [200] * 9 + [202]
