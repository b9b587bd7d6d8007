"""A result message's fate in Service B's results consumer, with a fake store typed against
``ResultTransitions`` (``provisioning.collaborators``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioning.api.results import ResultRecorder
from provisioning.errors import StoreUnavailable
from provisioning.models import FailureReason, ResultMessage, TaskStatus
from provisioning.store import Transition, TransitionOutcome
from provisioning.telemetry.metrics import ApiMetrics

from .test_task_fate import FakeDelivery

RESULT = ResultMessage("0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44", "abcdef1", TaskStatus.FAILED,
                       FailureReason.SERVICE_A_UNAVAILABLE, attempts=3, finished_at=5.0)


@dataclass
class FakeResultStore:
    """``status`` None: the task has no record; ``replicated``: missing records are restored."""

    status: TaskStatus | None = TaskStatus.RUNNING
    replicated: bool = False
    unavailable_times: int = 0  # transitions refused first (a durable write not acknowledged)
    restored: list[tuple[TaskStatus, FailureReason | None, int | None]] = field(default_factory=list)

    async def transition(self, task_id: str, status: TaskStatus,
                         failure: FailureReason | None = None, *,
                         attempts: int | None = None,
                         equipment_id: str | None = None) -> Transition:
        if self.unavailable_times:
            self.unavailable_times -= 1
            raise StoreUnavailable("1 of 1 replicas did not acknowledge")
        if self.status is None:
            return Transition(TransitionOutcome.MISSING, None)
        previous = self.status
        if previous.is_final:
            return Transition(TransitionOutcome.STALE, previous)
        self.status = status
        return Transition(TransitionOutcome.APPLIED, previous, 1.0)

    def restorable(self, created_at: float) -> bool:
        return self.replicated

    async def restore(self, task_id: str, equipment_id: str, status: TaskStatus, *,
                      created_at: float, failure: FailureReason | None = None,
                      attempts: int | None = None) -> bool:
        if self.status is not None:
            return False
        self.restored.append((status, failure, attempts))
        self.status = status
        return True


async def record(store: FakeResultStore, metrics: ApiMetrics | None = None) -> FakeDelivery:
    delivery = FakeDelivery(RESULT.encode())
    await ResultRecorder(store, metrics or ApiMetrics())(delivery)
    return delivery


async def test_a_result_is_stored_then_acked() -> None:
    store = FakeResultStore()
    assert (await record(store)).fate == "ack"
    assert store.status is TaskStatus.FAILED


async def test_a_result_not_acknowledged_by_the_replicas_is_held_and_stored_again() -> None:
    store = FakeResultStore(unavailable_times=1)
    # until_available's first pause is short; the result is acked only once the write counted.
    assert (await record(store)).fate == "ack"
    assert store.status is TaskStatus.FAILED


async def test_a_result_for_a_missing_record_is_dead_lettered_when_the_store_does_not_restore() -> None:
    store = FakeResultStore(status=None)
    assert (await record(store)).fate == "dead_letter"
    assert store.restored == []


async def test_a_result_whose_record_a_failover_lost_restores_the_final_record() -> None:
    metrics = ApiMetrics()
    store = FakeResultStore(status=None, replicated=True)
    assert (await record(store, metrics)).fate == "ack"
    assert store.restored == [(TaskStatus.FAILED, FailureReason.SERVICE_A_UNAVAILABLE, 3)]
    sample = metrics.registry.get_sample_value
    assert sample("provisioning_results_total", {"outcome": "restored"}) == 1
    assert sample("provisioning_results_total", {"outcome": "unknown_task"}) in (None, 0)


async def test_a_duplicate_result_changes_nothing_and_is_acked() -> None:
    store = FakeResultStore(status=TaskStatus.COMPLETED, replicated=True)
    assert (await record(store)).fate == "ack"
    assert (store.status, store.restored) == (TaskStatus.COMPLETED, [])
