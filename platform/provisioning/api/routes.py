"""Service B's routes: create a task, answer its status, cancel it, report health."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable

from sanic import Blueprint, HTTPResponse, json

from ..errors import (
    BrokerNotConnected,
    BrokerUnavailable,
    EquipmentBusy,
    StoreUnavailable,
    TaskNotFound,
)
from ..idempotency_key import HEADER as IDEMPOTENCY_HEADER
from ..idempotency_key import parse_idempotency_key
from ..messaging.topology import parking_queue
from ..models import (
    ProvisioningRequest,
    TaskMessage,
    check_equipment_id,
    check_task_id,
    parse_json_body,
    parse_provisioning_request,
)
from ..settings import EquipmentConcurrency
from ..store import Admission, CancelOutcome, Created, TransitionOutcome
from ..telemetry.tracing import annotate, current_trace_id
from ..webhooks.callback_url import parse_callback_url
from . import contract
from .content_type import require_json
from .context import ServiceContext, ServiceRequest
from .idempotent import IdempotentCreate, create_once
from .long_poll import long_poll, parse_wait
from .openapi import openapi_document

log = logging.getLogger(__name__)

equipment = Blueprint("equipment", url_prefix="/api/v1/equipment/cpe")
meta = Blueprint("meta")

HEALTH_TIMEOUT_SECONDS = 1.0  # a health check answers promptly even when Redis hangs
HAND_OVER_WAIT_SECONDS = 1.0  # what a create or a cancel waits of a serialize-mode hand-over
# Hand-overs that outlived their request's wait, kept referenced until they end.
_HAND_OVERS: set[asyncio.Task[None]] = set()


@equipment.post("/<equipment_id:str>")
async def create_task(request: ServiceRequest, equipment_id: str) -> HTTPResponse:
    # Shielded: a client hanging up must not cut the work between the record and its message.
    # The in-flight place is held until the work itself ends, not the client's wait for it,
    # so hung-up clients that retry cannot pile up work past the limit.
    work = request.app.ctx.in_flight.start_held(lambda: _create_task(request, equipment_id))
    return await asyncio.shield(work)


async def _create_task(request: ServiceRequest, equipment_id: str) -> HTTPResponse:
    check_equipment_id(equipment_id)
    annotate(**{"equipment.id": equipment_id})
    ctx = request.app.ctx
    if ctx.settings.require_json_content_type:
        require_json(request.headers.getall("content-type", []))
    key = parse_idempotency_key(request.headers.getall(IDEMPOTENCY_HEADER, []))
    body = parse_json_body(request.body)
    provisioning = parse_provisioning_request(body, ctx.settings.request_limits)
    callback_url = parse_callback_url(body, ctx.callback_policy)
    task_id = str(uuid.uuid4())
    if key is None:
        await _enqueue(ctx, task_id, equipment_id, provisioning, callback_url)
        return contract.task_created(task_id)
    # Validated before the claim: a refused request stores nothing.
    create = IdempotentCreate.of(ctx, key=key, caller=_caller(request), equipment_id=equipment_id,
                                 provisioning=provisioning, callback_url=callback_url)
    return await create_once(ctx, create, task_id,
                             lambda: _enqueue(ctx, task_id, equipment_id, provisioning, callback_url))


def _caller(request: ServiceRequest) -> str | None:
    """The bearer token when tokens are on (the guard has accepted it by now), else None."""
    if not request.app.ctx.settings.tokens:
        return None
    return str(request.headers.get("authorization", "")).removeprefix("Bearer ")


async def _enqueue(
    ctx: ServiceContext, task_id: str, equipment_id: str, provisioning: ProvisioningRequest,
    callback_url: str | None = None,
) -> None:
    """Write ``pending`` first, then publish.

    When the publish fails the client is told 500, so the task must never run. A publish that
    surely never left (no connection) is undone by deleting the record. One whose fate is
    unknown (no confirm in time, connection lost in flight) may still be queued: the record
    becomes a final ``failed`` tombstone, which a worker acks without calling Service A, but
    only while it is still ``pending``; if a worker already took the task, it was queued after
    all and the create succeeds.
    """
    mode = ctx.settings.equipment_concurrency
    try:
        if mode is EquipmentConcurrency.SERIALIZE:
            created = await ctx.store.create_in_turn(task_id, equipment_id,
                                                     max_waiting=ctx.settings.max_waiting,
                                                     trace_id=current_trace_id(),
                                                     callback_url=callback_url)
        else:
            created = Created(await ctx.store.create(
                task_id, equipment_id, exclusive=mode is EquipmentConcurrency.REJECT,
                trace_id=current_trace_id(), callback_url=callback_url))
    except EquipmentBusy:  # and EquipmentQueueFull
        ctx.metrics.equipment_busy.inc()
        raise
    message = TaskMessage(task_id, equipment_id, provisioning, created.created_at)
    parked = created.admission is Admission.PARK
    queue = ctx.settings.broker.tasks_queue
    try:
        if parked:
            # Serialize mode: the message waits for the device's turn on a queue of its own
            # (the credentials stay on the broker); ``serialization`` moves it at its turn.
            queue = parking_queue(queue, task_id)
            await ctx.broker.declare_parking(queue, ctx.settings.redis.task_ttl_seconds)
        await ctx.broker.publish(queue, message.encode(), message_id=task_id)
    except BrokerNotConnected:
        await _forget(task_id, ctx.store.delete(task_id, equipment_id))
        raise
    except Exception:
        if not await _tombstone(ctx, task_id, equipment_id):
            raise
        log.warning("publish unconfirmed, but a worker already took the task",
                    extra={"task_id": task_id})
    if parked:
        ctx.metrics.equipment_parked.inc()
        ctx.metrics.equipment_waiting_depth.observe(created.waiting)
        annotate(**{"equipment.parked": "true", "equipment.waiting": str(created.waiting)})
        if not created.behind:
            # Parked behind waiting tasks while the turn was free for a moment (its holder had
            # just ended): make sure a hand-over runs, as its holder's may have run already.
            await _hand_over(ctx, equipment_id)
    ctx.metrics.tasks_created.inc()
    annotate(**{"task.id": task_id})
    log.info("task queued", extra={"task_id": task_id, "equipment_id": equipment_id})


async def _tombstone(ctx: ServiceContext, task_id: str, equipment_id: str) -> bool:
    """Fail a still-pending task; True when it had already left ``pending`` (it was queued)."""
    try:
        transition = await ctx.store.tombstone(task_id, equipment_id)
    except StoreUnavailable as error:
        log.error("task could not be queued nor forgotten: %s", error, extra={"task_id": task_id})
        return False
    return transition.outcome is TransitionOutcome.STALE


async def _hand_over(ctx: ServiceContext, equipment_id: str) -> None:
    """Best effort (serialize mode): a failure is logged, a later trigger hands over again.

    A request waits for it at most ``HAND_OVER_WAIT_SECONDS``: a hand-over may wait for a parked
    message to arrive, or for Redis to come back, and a client must not hang on either. Past
    that the hand-over goes on in the background (shielded: cutting it between taking the
    parked message and republishing it would leave that message unacked on an open channel).
    """
    hand_over = asyncio.create_task(_logged_hand_over(ctx, equipment_id))
    _HAND_OVERS.add(hand_over)
    hand_over.add_done_callback(_HAND_OVERS.discard)
    try:
        await asyncio.wait_for(asyncio.shield(hand_over), HAND_OVER_WAIT_SECONDS)
    except TimeoutError:
        log.warning("turn hand-over still running; the answer does not wait for it",
                    extra={"equipment_id": equipment_id})


async def _logged_hand_over(ctx: ServiceContext, equipment_id: str) -> None:
    try:
        await ctx.serializer.hand_over(equipment_id)
    except (BrokerUnavailable, StoreUnavailable) as error:
        log.warning("turn not handed over: %s", error, extra={"equipment_id": equipment_id})


async def _forget(task_id: str, operation: Awaitable[object]) -> None:
    try:
        await operation
    except StoreUnavailable as error:
        log.error("task could not be queued nor forgotten: %s", error, extra={"task_id": task_id})


@equipment.get("/<equipment_id:str>/task/<task_id:str>")
async def task_status(request: ServiceRequest, equipment_id: str, task_id: str) -> HTTPResponse:
    """The classic status read; with ``?wait=`` a long-poll (``long_poll``), which counts
    against ``API_MAX_WAITERS`` instead of the in-flight limit."""
    ctx = request.app.ctx
    wait = parse_wait(request, ctx.settings.completion.max_wait_seconds)
    if wait is not None:
        check_equipment_id(equipment_id)
        annotate(**{"equipment.id": equipment_id, "task.id": task_id, "status.wait": str(wait)})
        return await long_poll(ctx, equipment_id, check_task_id(task_id), wait)
    with ctx.in_flight.admit():
        return await _task_status(request, equipment_id, task_id)


async def _task_status(request: ServiceRequest, equipment_id: str, task_id: str) -> HTTPResponse:
    check_equipment_id(equipment_id)
    annotate(**{"equipment.id": equipment_id, "task.id": task_id})
    record = await request.app.ctx.store.get(check_task_id(task_id), equipment_id)
    if record is None or record.equipment_id != equipment_id:
        raise TaskNotFound()
    return contract.task_status(record)


@equipment.delete("/<equipment_id:str>/task/<task_id:str>")
async def cancel_task(request: ServiceRequest, equipment_id: str, task_id: str) -> HTTPResponse:
    with request.app.ctx.in_flight.admit():
        return await _cancel_task(request, equipment_id, task_id)


async def _cancel_task(request: ServiceRequest, equipment_id: str, task_id: str) -> HTTPResponse:
    """Cancel a task, after AIP-151's CancelOperation: persistent (in the record, so a worker
    that restarts still sees it) and never aborting a call already in flight.

    202: it was pending (now ``cancelled``; the worker acks its message without calling
    Service A) or it is running (only the request is recorded; the call and its retries go on
    and their outcome is recorded). 200: it is final, nothing to cancel; the body is the
    classic GET's body for it. 404: exactly as GET."""
    check_equipment_id(equipment_id)
    annotate(**{"equipment.id": equipment_id, "task.id": task_id})
    ctx = request.app.ctx
    task_id = check_task_id(task_id)
    outcome, _, callback_url = await ctx.store.cancel(task_id, equipment_id)
    ctx.metrics.cancellations.labels(outcome=outcome.value).inc()
    if outcome is CancelOutcome.MISSING:
        raise TaskNotFound()
    if callback_url is not None:
        # Cancelled now, or final with its webhook not queued yet: queue it before answering.
        # If that fails the answer is 500, and a retried DELETE queues it (the cancel stays).
        await ctx.outbox.queue(task_id, callback_url)
    if outcome is not CancelOutcome.ALREADY_FINAL:
        log.info("task cancellation %s", outcome.value,
                 extra={"task_id": task_id, "equipment_id": equipment_id})
        if (outcome is CancelOutcome.CANCELLED
                and ctx.settings.equipment_concurrency is EquipmentConcurrency.SERIALIZE):
            await _hand_over(ctx, equipment_id)  # a cancelled task frees its turn
        return contract.cancel_accepted()
    record = await ctx.store.get(task_id, equipment_id)
    if record is None:  # expired between the two reads
        raise TaskNotFound()
    return contract.final_state(record.status, record.failure)


@meta.get("/openapi.json")
async def openapi(request: ServiceRequest) -> HTTPResponse:
    """The contract as an OpenAPI document."""
    settings = request.app.ctx.settings
    return json(openapi_document(with_auth=bool(settings.tokens), limits=settings.request_limits,
                                 json_content_type_required=settings.require_json_content_type,
                                 webhooks_enabled=settings.webhooks.enabled))


@meta.get("/health")
async def health_check(request: ServiceRequest) -> HTTPResponse:
    """200 when this process reaches Redis and RabbitMQ, else 503 naming what is down.

    While RabbitMQ blocks publishing (a resource alarm) it stays 200 and adds
    ``"rabbitmqBlocked": "<the broker's reason>"``: readiness follows /health, and taking every
    pod out of service for an alarm of the whole cluster would turn the creates' 503 with
    Retry-After into connection errors and stop the status reads, which still work."""
    ctx = request.app.ctx
    try:
        await asyncio.wait_for(ctx.store.ping(), HEALTH_TIMEOUT_SECONDS)
        redis_up = True
    except (StoreUnavailable, TimeoutError):
        redis_up = False
    rabbitmq_up = ctx.broker.connected
    healthy = redis_up and rabbitmq_up
    body: dict[str, str | bool] = {"status": "ok" if healthy else "unavailable",
                                   "redis": redis_up, "rabbitmq": rabbitmq_up}
    blocked = ctx.broker.blocked
    if blocked is not None:
        body["rabbitmqBlocked"] = blocked
    return json(body, status=200 if healthy else 503)
