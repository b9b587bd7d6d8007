"""What the message handlers need from their collaborators, as Protocols.

``TaskProcessor`` (the worker) and ``ResultRecorder`` (Service B) depend on these, not on
``TaskStore``, ``Broker``, ``ServiceAClient``, ``EquipmentLease`` or ``messaging.Delivery``: the real classes
satisfy them structurally, and the unit tests' fakes are type-checked against them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .models import FailureReason, ProvisioningRequest, TaskStatus
from .store import Transition


class RecordRestore(Protocol):
    """Writing back a record Redis lost in a failover, from a message (``TaskStore.restore``);
    ``restorable`` says whether a message of that age restores its missing record at all."""

    def restorable(self, created_at: float) -> bool: ...

    async def restore(self, task_id: str, equipment_id: str, status: TaskStatus, *,
                      created_at: float, failure: FailureReason | None = None,
                      attempts: int | None = None) -> bool: ...


class TaskTransitions(RecordRestore, Protocol):
    """What the worker does with a task's record (``TaskStore``): move it forward, or restore
    it when it was lost."""

    async def transition(
        self, task_id: str, status: TaskStatus, failure: FailureReason | None = None, *,
        equipment_id: str | None = None,
    ) -> Transition: ...


class ResultTransitions(RecordRestore, Protocol):
    """What the results consumer does with a result (``TaskStore``): the final transition,
    recorded with the number of Service A attempts, or the final record restored."""

    async def transition(
        self, task_id: str, status: TaskStatus, failure: FailureReason | None = None, *,
        attempts: int | None = None, equipment_id: str | None = None,
    ) -> Transition: ...


class ResultPublisher(Protocol):
    """Publishes a message and returns once the broker confirmed it (``Broker``); raises
    ``BrokerUnavailable`` otherwise."""

    async def publish(self, queue: str, body: bytes, *, message_id: str) -> None: ...


class ServiceA(Protocol):
    """One attempt to configure a device (``ServiceAClient``): returns on success, raises
    ``ServiceAFinalError`` or ``ServiceATransientError`` otherwise."""

    async def configure(self, equipment_id: str, request: ProvisioningRequest) -> None: ...


class DeviceLease(Protocol):
    """Exclusive use of one device for one Service A attempt (``EquipmentLease``): entering
    waits until no other attempt holds the device and gives how long it waited (seconds)."""

    def hold(self, equipment_id: str, task_id: str) -> AbstractAsyncContextManager[float]: ...


class TurnHandOver(Protocol):
    """Serialize mode (``serialization.Serializer``): give the device's turn to its next
    waiting task while holding the trigger message; False when the trigger's channel is gone."""

    async def hand_over_held(self, delivery: InboundDelivery, equipment_id: str) -> bool: ...


class AttemptLog(Protocol):
    """Records one Service A attempt in the task's event log (``TaskStore.record_attempt``)."""

    async def record_attempt(self, task_id: str, attempt: int, outcome: str, *,
                             equipment_id: str | None = None) -> None: ...


class WebhookQueue(Protocol):
    """Queues a final task's webhook while holding its trigger (``webhooks.WebhookOutbox``);
    False when the trigger's channel is gone."""

    async def queue_held(self, delivery: InboundDelivery, task_id: str, url: str) -> bool: ...


class InboundDelivery(Protocol):
    """A message held by its handler until one of its three fates (``messaging.Delivery``)."""

    @property
    def body(self) -> bytes: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def redelivered(self) -> bool: ...

    @property
    def deliverable(self) -> bool:
        """False once the message can no longer be settled: the broker redelivers it."""
        ...

    async def ack(self) -> None: ...

    async def requeue(self) -> None: ...

    async def dead_letter(self, reason: str) -> None: ...
