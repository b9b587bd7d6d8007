"""The task store's serialize-mode scripts (create in turn, advance), on the real Redis."""

from __future__ import annotations

import uuid

import pytest

from provisioning.errors import EquipmentQueueFull
from provisioning.models import FailureReason, TaskStatus
from provisioning.store import Admission, AdvanceOutcome, TaskStore

MAX_WAITING = 3


def new_id() -> str:
    return str(uuid.uuid4())


def device() -> str:
    return f"SER{uuid.uuid4().hex[:10]}"


async def in_turn(store: TaskStore, equipment_id: str, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    for task_id in ids:
        await store.create_in_turn(task_id, equipment_id, max_waiting=MAX_WAITING)
    return ids


async def test_the_first_task_takes_the_turn_and_the_next_wait_parked_in_order(
    store: TaskStore,
) -> None:
    equipment_id = device()
    first, second, third = new_id(), new_id(), new_id()
    assert (await store.create_in_turn(first, equipment_id, max_waiting=MAX_WAITING)).admission \
        is Admission.RUN
    parked = await store.create_in_turn(second, equipment_id, max_waiting=MAX_WAITING)
    assert (parked.admission, parked.waiting, parked.behind) == (Admission.PARK, 1, first)
    assert (await store.create_in_turn(third, equipment_id, max_waiting=MAX_WAITING)).waiting == 2
    assert await store.redis.lrange(store.waiting_key(equipment_id), 0, -1) == [second, third]
    assert await store.parked(second) == (TaskStatus.PENDING, True)
    assert await store.parked(first) == (TaskStatus.PENDING, False)


async def test_past_the_bound_a_create_is_refused_naming_the_turns_task_and_writes_nothing(
    store: TaskStore,
) -> None:
    equipment_id = device()
    first, *_ = await in_turn(store, equipment_id, 1 + MAX_WAITING)
    refused = new_id()
    with pytest.raises(EquipmentQueueFull) as raised:
        await store.create_in_turn(refused, equipment_id, max_waiting=MAX_WAITING)
    assert raised.value.task_id == first
    assert await store.get(refused) is None


async def test_advance_does_nothing_while_the_turns_task_is_unfinished(store: TaskStore) -> None:
    equipment_id = device()
    first, _ = await in_turn(store, equipment_id, 2)
    await store.transition(first, TaskStatus.RUNNING)
    step = await store.advance(equipment_id)
    assert (step.outcome, step.task_id, step.waiting) == (AdvanceOutcome.BUSY, first, 1)


async def test_advance_gives_the_turn_to_the_next_pending_task_skipping_cancelled_ones(
    store: TaskStore,
) -> None:
    equipment_id = device()
    first, second, third = await in_turn(store, equipment_id, 3)
    await store.cancel(second, equipment_id)
    await store.transition(first, TaskStatus.COMPLETED)
    step = await store.advance(equipment_id)
    assert (step.outcome, step.task_id, step.waiting, step.skipped) == (
        AdvanceOutcome.MOVE, third, 0, (second,))
    assert step.created_at is not None
    assert await store.redis.get(store.active_key(equipment_id)) == third
    # Until its message is moved (unpark), another advance asks for the move again.
    assert (await store.advance(equipment_id)).outcome is AdvanceOutcome.MOVE
    await store.unpark(third)
    assert (await store.advance(equipment_id)).outcome is AdvanceOutcome.BUSY


async def test_advance_frees_the_turn_when_nothing_waits_and_a_new_task_then_runs(
    store: TaskStore,
) -> None:
    equipment_id = device()
    (first,) = await in_turn(store, equipment_id, 1)
    await store.transition(first, TaskStatus.FAILED, FailureReason.SERVICE_A_UNAVAILABLE)
    assert (await store.advance(equipment_id)).outcome is AdvanceOutcome.IDLE
    assert await store.redis.exists(store.active_key(equipment_id)) == 0
    later = await store.create_in_turn(new_id(), equipment_id, max_waiting=MAX_WAITING)
    assert later.admission is Admission.RUN


async def test_a_create_parks_behind_waiting_tasks_even_while_the_turn_is_free(
    store: TaskStore,
) -> None:
    """Creation order: a task created between a turn's end and its hand-over waits its turn."""
    equipment_id = device()
    first, second = await in_turn(store, equipment_id, 2)
    await store.transition(first, TaskStatus.COMPLETED)  # the turn is free, second still waits
    late = await store.create_in_turn(new_id(), equipment_id, max_waiting=MAX_WAITING)
    assert (late.admission, late.behind, late.waiting) == (Admission.PARK, "", 2)
    assert (await store.advance(equipment_id)).task_id == second


async def test_deleting_a_parked_task_removes_it_from_the_waiting_list(store: TaskStore) -> None:
    equipment_id = device()
    _, second = await in_turn(store, equipment_id, 2)
    await store.delete(second)
    assert await store.redis.llen(store.waiting_key(equipment_id)) == 0
