"""A task message's fate in the worker, with fakes at the edges (store, broker, Service A).

The fakes are typed against the Protocols ``TaskProcessor`` depends on (``provisioning.collaborators``),
so mypy checks them against the real collaborators' contracts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from provisioning.backoff import Backoff
from provisioning.collaborators import (
    DeviceLease,
    InboundDelivery,
)
from provisioning.errors import (
    BrokerUnavailable,
    ServiceAFinalError,
    ServiceATransientError,
    StoreUnavailable,
)
from provisioning.models import (
    DeviceParameters,
    FailureReason,
    ProvisioningRequest,
    ResultMessage,
    TaskMessage,
    TaskStatus,
)
from provisioning.store import Transition, TransitionOutcome
from provisioning.telemetry.metrics import WorkerMetrics
from provisioning.worker.consumer import TaskProcessor

NO_PAUSE = Backoff(0.0, 0.0)

TASK = TaskMessage(
    "0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44",
    "abcdef1",
    ProvisioningRequest(14, DeviceParameters("admin", "pw", (1,))),
    created_at=1.0,
)


@dataclass
class FakeDelivery:
    body: bytes
    fate: str | None = None
    message_id: str | None = "m1"
    redelivered: bool = False
    deliverable: bool = True

    async def ack(self) -> None:
        self.fate = "ack"

    async def requeue(self) -> None:
        self.fate = "requeue"

    async def dead_letter(self, reason: str) -> None:
        self.fate = "dead_letter"


@dataclass
class FakeStore:
    """``previous`` None: the task has no record. ``replicated``: the store restores missing
    records (Sentinel), ``restore_unavailable_times`` of its restores fail first."""

    previous: TaskStatus | None = TaskStatus.PENDING
    unavailable_times: int = 0
    calls: int = 0
    replicated: bool = False
    restore_unavailable_times: int = 0
    restored: list[tuple[str, TaskStatus, float]] = field(default_factory=list)

    async def transition(
        self, task_id: str, status: TaskStatus, failure: FailureReason | None = None, *,
        equipment_id: str | None = None,
    ) -> Transition:
        self.calls += 1
        if self.unavailable_times:
            self.unavailable_times -= 1
            raise StoreUnavailable("down")
        if self.previous is None:
            return Transition(TransitionOutcome.MISSING, None)
        if self.previous.is_final:
            return Transition(TransitionOutcome.STALE, self.previous)
        return Transition(TransitionOutcome.APPLIED, self.previous)

    def restorable(self, created_at: float) -> bool:
        return self.replicated

    async def restore(self, task_id: str, equipment_id: str, status: TaskStatus, *,
                      created_at: float, failure: FailureReason | None = None,
                      attempts: int | None = None) -> bool:
        if self.restore_unavailable_times:
            self.restore_unavailable_times -= 1
            raise StoreUnavailable("failing over")
        if self.previous is not None:
            return False
        self.restored.append((equipment_id, status, created_at))
        self.previous = status
        return True


@dataclass
class FakeBroker:
    failures: int = 0
    published: list[ResultMessage] = field(default_factory=list)

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None:
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("down")
        self.published.append(ResultMessage.decode(body))


@dataclass
class FakeServiceA:
    answers: list[Exception | None]
    calls: int = 0

    async def configure(self, equipment_id: str, request: ProvisioningRequest) -> None:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


@dataclass
class FakeLease:
    """Records each hold, and whether Service A was called while one was held."""

    waited: float = 0.0
    holds: list[tuple[str, str]] = field(default_factory=list)
    holding: bool = False

    @asynccontextmanager
    async def hold(self, equipment_id: str, task_id: str) -> AsyncIterator[float]:
        self.holds.append((equipment_id, task_id))
        self.holding = True
        yield self.waited
        self.holding = False


@dataclass
class LeasedServiceA(FakeServiceA):
    """Service A that notes, at each call, whether the device's lease was held."""

    lease: FakeLease = field(default_factory=FakeLease)
    held_at_call: list[bool] = field(default_factory=list)

    async def configure(self, equipment_id: str, request: ProvisioningRequest) -> None:
        self.held_at_call.append(self.lease.holding)
        await super().configure(equipment_id, request)


async def process(
    *, answers: list[Exception | None] | None = None, store: FakeStore | None = None,
    broker: FakeBroker | None = None, body: bytes = TASK.encode(), attempts: int = 3,
    metrics: WorkerMetrics | None = None, delivery: FakeDelivery | None = None,
    service_a: FakeServiceA | None = None, lease: DeviceLease | None = None,
    turns: FakeTurns | None = None,
) -> tuple[FakeDelivery, FakeBroker, FakeServiceA]:
    broker = broker or FakeBroker()
    if service_a is None:
        service_a = FakeServiceA(answers or [])
    processor = TaskProcessor(
        store=store or FakeStore(),
        broker=broker,
        service_a=service_a,
        results_queue="results",
        attempts=attempts,
        backoff=NO_PAUSE,
        metrics=metrics or WorkerMetrics(),
        store_retry=NO_PAUSE,
        publish_retry=NO_PAUSE,
        lease=lease,
        turns=turns,
    )
    delivery = delivery or FakeDelivery(body)
    await processor(delivery)
    return delivery, broker, service_a


async def test_a_success_publishes_completed_then_acks() -> None:
    delivery, broker, service_a = await process()
    assert delivery.fate == "ack"
    assert service_a.calls == 1
    assert [r.status for r in broker.published] == [TaskStatus.COMPLETED]


async def test_transient_failures_are_retried_until_success() -> None:
    delivery, broker, service_a = await process(
        answers=[ServiceATransientError("503"), ServiceATransientError("timeout"), None]
    )
    assert service_a.calls == 3
    assert broker.published[0].status is TaskStatus.COMPLETED
    assert broker.published[0].attempts == 3
    assert delivery.fate == "ack"


async def test_transient_failures_past_the_attempts_fail_the_task() -> None:
    delivery, broker, service_a = await process(
        answers=[ServiceATransientError("500")] * 5, attempts=3
    )
    assert service_a.calls == 3
    assert broker.published[0].status is TaskStatus.FAILED
    assert broker.published[0].failure is FailureReason.SERVICE_A_UNAVAILABLE
    assert delivery.fate == "ack"


async def test_unknown_equipment_is_final_at_once() -> None:
    _delivery, broker, service_a = await process(
        answers=[ServiceAFinalError("404", equipment_unknown=True)]
    )
    assert service_a.calls == 1
    assert broker.published[0].failure is FailureReason.EQUIPMENT_NOT_FOUND


@pytest.mark.parametrize("final", [TaskStatus.COMPLETED, TaskStatus.FAILED])
async def test_a_redelivered_final_task_is_acked_without_calling_service_a(final: TaskStatus) -> None:
    delivery, broker, service_a = await process(store=FakeStore(previous=final))
    assert delivery.fate == "ack"
    assert service_a.calls == 0
    assert broker.published == []


async def test_a_redelivered_running_task_is_done_again() -> None:
    delivery, _broker, service_a = await process(store=FakeStore(previous=TaskStatus.RUNNING))
    assert service_a.calls == 1
    assert delivery.fate == "ack"


async def test_a_task_without_record_is_dead_lettered_when_the_store_does_not_restore() -> None:
    store = FakeStore(previous=None)
    delivery, _broker, service_a = await process(store=store)
    assert delivery.fate == "dead_letter"
    assert service_a.calls == 0
    assert store.restored == []


async def test_a_task_whose_record_a_failover_lost_is_restored_running_and_run() -> None:
    store = FakeStore(previous=None, replicated=True, restore_unavailable_times=2)
    delivery, broker, service_a = await process(store=store)
    assert store.restored == [(TASK.equipment_id, TaskStatus.RUNNING, TASK.created_at)]
    assert (delivery.fate, service_a.calls) == ("ack", 1)
    assert [r.status for r in broker.published] == [TaskStatus.COMPLETED]


@pytest.mark.parametrize("tombstoned", [TaskStatus.FAILED, TaskStatus.CANCELLED])
async def test_a_refused_or_cancelled_create_keeps_its_record_and_never_runs_even_when_restoring(
    tombstoned: TaskStatus,
) -> None:
    store = FakeStore(previous=tombstoned, replicated=True)
    delivery, broker, service_a = await process(store=store)
    assert (delivery.fate, service_a.calls, broker.published, store.restored) == (
        "ack", 0, [], [])


async def test_a_malformed_task_is_dead_lettered() -> None:
    delivery, _, service_a = await process(body=b"{not json")
    assert delivery.fate == "dead_letter"
    assert service_a.calls == 0


async def test_redis_down_holds_the_message_until_it_answers() -> None:
    store = FakeStore(unavailable_times=2)
    delivery, _broker, _ = await process(store=store)
    assert store.calls == 3
    assert delivery.fate == "ack"


async def test_a_result_not_published_yet_is_retried_while_the_task_is_held() -> None:
    delivery, broker, service_a = await process(broker=FakeBroker(failures=2))
    assert service_a.calls == 1
    assert [r.status for r in broker.published] == [TaskStatus.COMPLETED]
    assert delivery.fate == "ack"


async def test_a_result_not_published_when_the_channel_is_gone_is_left_to_redelivery() -> None:
    gone = FakeDelivery(TASK.encode(), deliverable=False)
    delivery, broker, service_a = await process(broker=FakeBroker(failures=1), delivery=gone)
    assert service_a.calls == 1
    assert broker.published == []
    assert delivery.fate is None  # nothing to settle on a closed channel


async def test_outcomes_retries_and_calls_are_counted_and_nothing_stays_in_flight() -> None:
    metrics = WorkerMetrics()
    await process(answers=[ServiceATransientError("503"), None], metrics=metrics)
    await process(store=FakeStore(previous=TaskStatus.COMPLETED), metrics=metrics)
    sample = metrics.registry.get_sample_value
    assert sample("provisioning_worker_tasks_total", {"outcome": "completed"}) == 1
    assert sample("provisioning_worker_tasks_total", {"outcome": "already_final"}) == 1
    assert sample("provisioning_service_a_retries_total") == 1
    assert sample("provisioning_service_a_request_duration_seconds_count", {"outcome": "error"}) == 1
    assert sample("provisioning_service_a_request_duration_seconds_count", {"outcome": "success"}) == 1
    assert sample("provisioning_worker_tasks_in_flight") == 0


async def test_with_a_lease_every_attempt_calls_service_a_while_holding_its_device() -> None:
    lease = FakeLease()
    service_a = LeasedServiceA([ServiceATransientError("503"), None], lease=lease)
    delivery, _, _ = await process(service_a=service_a, lease=lease)
    assert delivery.fate == "ack"
    assert service_a.held_at_call == [True, True]
    assert lease.holds == [(TASK.equipment_id, TASK.task_id)] * 2
    assert not lease.holding, "the lease is not kept between attempts (nor after the task)"


async def test_waits_for_a_device_are_counted_and_every_attempts_wait_is_observed() -> None:
    metrics = WorkerMetrics()
    await process(lease=FakeLease(waited=2.5), metrics=metrics)
    await process(lease=FakeLease(waited=0.0), metrics=metrics)
    sample = metrics.registry.get_sample_value
    assert sample("provisioning_worker_equipment_lease_waits_total") == 1
    assert sample("provisioning_worker_equipment_lease_wait_seconds_count") == 2
    assert sample("provisioning_worker_equipment_lease_wait_seconds_sum") == 2.5


async def test_without_a_lease_nothing_is_waited_for_or_observed() -> None:
    metrics = WorkerMetrics()
    await process(metrics=metrics)
    sample = metrics.registry.get_sample_value
    assert sample("provisioning_worker_equipment_lease_wait_seconds_count") == 0
    assert sample("provisioning_worker_equipment_lease_waits_total") == 0


@dataclass
class FakeTurns:
    """Serialize mode's hand-over (``TurnHandOver``: mypy checks it where ``process`` passes it
    to the processor): records the device and the trigger's fate at that moment."""

    handed_over: list[tuple[str, str | None]] = field(default_factory=list)
    channel_gone: bool = False

    async def hand_over_held(self, delivery: InboundDelivery, equipment_id: str) -> bool:
        assert isinstance(delivery, FakeDelivery)
        self.handed_over.append((equipment_id, delivery.fate))
        return not self.channel_gone


@pytest.mark.parametrize("previous", [TaskStatus.CANCELLED, TaskStatus.COMPLETED])
async def test_a_task_that_will_not_run_hands_its_devices_turn_over_before_its_ack(
    previous: TaskStatus,
) -> None:
    turns = FakeTurns()
    delivery, _, service_a = await process(store=FakeStore(previous=previous), turns=turns)
    assert turns.handed_over == [(TASK.equipment_id, None)]  # not acked yet at the hand-over
    assert (delivery.fate, service_a.calls) == ("ack", 0)


async def test_a_hand_over_cut_off_by_a_lost_channel_leaves_the_task_to_redelivery() -> None:
    delivery, _, _ = await process(store=FakeStore(previous=TaskStatus.CANCELLED),
                                   turns=FakeTurns(channel_gone=True))
    assert delivery.fate is None


async def test_a_task_that_runs_hands_nothing_over_itself() -> None:
    turns = FakeTurns()
    delivery, _, _ = await process(answers=[None], turns=turns)
    assert (delivery.fate, turns.handed_over) == ("ack", [])
