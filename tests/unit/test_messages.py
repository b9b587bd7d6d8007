"""Task and result messages: what goes over RabbitMQ, and what is refused as poison."""

from __future__ import annotations

import json

import pytest

from provisioning.errors import InvalidMessage
from provisioning.messaging import all_queues, dead_letter_queue, queue_arguments
from provisioning.models import (
    DeviceParameters,
    FailureReason,
    ProvisioningRequest,
    ResultMessage,
    TaskMessage,
    TaskStatus,
)

TASK_ID = "0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44"
REQUEST = ProvisioningRequest(14, DeviceParameters("admin", "pw", (1, 2), vlan=7))


def test_a_task_message_round_trips() -> None:
    message = TaskMessage(TASK_ID, "abcdef1", REQUEST, created_at=1700000000.5)
    assert TaskMessage.decode(message.encode()) == message


@pytest.mark.parametrize(
    "result",
    [
        ResultMessage(TASK_ID, "abcdef1", TaskStatus.COMPLETED, None, 1, 1.0),
        ResultMessage(TASK_ID, "abcdef1", TaskStatus.FAILED, FailureReason.EQUIPMENT_NOT_FOUND, 1, 2.0),
    ],
)
def test_a_result_message_round_trips(result: ResultMessage) -> None:
    assert ResultMessage.decode(result.encode()) == result


def test_messages_queued_before_the_id_bound_are_still_read() -> None:
    # Service B now refuses ids over 128 characters; messages an earlier version queued with
    # longer ones must still be worked on and recorded, not dead-lettered as poison.
    long_id = "A" * 200
    task = TaskMessage(TASK_ID, long_id, REQUEST, created_at=1.0)
    result = ResultMessage(TASK_ID, long_id, TaskStatus.COMPLETED, None, 1, 2.0)
    assert TaskMessage.decode(task.encode()) == task
    assert ResultMessage.decode(result.encode()) == result


def test_a_result_must_be_final() -> None:
    with pytest.raises(InvalidMessage, match="must be final"):
        ResultMessage(TASK_ID, "abcdef1", TaskStatus.RUNNING, None, 1, 1.0)


def test_a_failed_result_names_its_reason() -> None:
    with pytest.raises(InvalidMessage, match="failure reason"):
        ResultMessage(TASK_ID, "abcdef1", TaskStatus.FAILED, None, 1, 1.0)


def test_a_completed_result_has_no_failure_reason() -> None:
    with pytest.raises(InvalidMessage, match="failure reason"):
        ResultMessage(TASK_ID, "abcdef1", TaskStatus.COMPLETED, FailureReason.REJECTED_BY_SERVICE_A, 1, 1.0)


VALID_TASK = json.loads(TaskMessage(TASK_ID, "abcdef1", REQUEST, 1.0).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({**VALID_TASK, "taskId": "42"}).encode(),
        json.dumps({**VALID_TASK, "equipmentId": "bad id"}).encode(),
        json.dumps({**VALID_TASK, "createdAt": "yesterday"}).encode(),
        json.dumps({**VALID_TASK, "request": {"timeoutInSeconds": 1}}).encode(),
        json.dumps({k: v for k, v in VALID_TASK.items() if k != "taskId"}).encode(),
    ],
)
def test_a_malformed_task_message_is_poison(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        TaskMessage.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01",
        json.dumps({"taskId": TASK_ID}).encode(),
        json.dumps({"taskId": TASK_ID, "equipmentId": "abcdef1", "status": "done",
                    "failure": None, "attempts": 1, "finishedAt": 1.0}).encode(),
        json.dumps({"taskId": TASK_ID, "equipmentId": "abcdef1", "status": "failed",
                    "failure": "gremlins", "attempts": 1, "finishedAt": 1.0}).encode(),
    ],
)
def test_a_malformed_result_message_is_poison(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        ResultMessage.decode(raw)


def test_json_nested_too_deeply_is_poison_not_a_crash() -> None:
    with pytest.raises(InvalidMessage):
        TaskMessage.decode(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({**VALID_TASK, "createdAt": 10**400}).encode(),
        b'{"taskId": ' + b"1" * 5000 + b"}",
    ],
)
def test_numbers_out_of_range_are_poison_not_a_crash(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        TaskMessage.decode(raw)
    with pytest.raises(InvalidMessage):
        ResultMessage.decode(raw)


def test_each_work_queue_dead_letters_to_a_queue_of_its_own() -> None:
    queues = all_queues("tasks", "results")
    assert queues[:2] == ["tasks", "results"]
    assert queues[2:] == [dead_letter_queue("tasks"), dead_letter_queue("results")]
    assert len(set(queues)) == 4
    for queue in ("tasks", "results"):
        assert queue_arguments(queue, 5)["x-dead-letter-routing-key"] == dead_letter_queue(queue)
