"""Creates with an ``Idempotency-Key``: one task per scoped key, the first answer replayed.

After the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe's behaviour, for a
request that was already validated (a refused request claims nothing):

- the key is free: claim it, create the task, and answer 200; the key then replays that
  answer for ``IDEMPOTENCY_TTL_SECONDS``. A create that does not end in 200 (a 500, or a 4xx
  decided after the claim, such as ``EQUIPMENT_CONCURRENCY=reject``'s 409) releases the key,
  so a retry can create;
- the key holds another body's fingerprint: 422 (before anything else);
- the key's first request is still between its claim and its answer: 409 with ``Retry-After``;
- the key's first request was answered 200: the same answer, with the same task id, whatever
  the task's state is now, and ``Idempotent-Replayed: true`` (as Stripe does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sanic import HTTPResponse

from ..errors import IdempotencyKeyReused, IdempotentRequestInProgress, StoreUnavailable
from ..idempotency import KeyRecord, KeyState
from ..idempotency_key import NO_CALLER, fingerprint, scope_digest
from ..models import ProvisioningRequest
from ..telemetry.tracing import annotate
from . import contract
from .context import ServiceContext

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class IdempotentCreate:
    """One create with a key: where its record lives and what its body hashes to."""

    scope: str
    fingerprint: str

    @classmethod
    def of(cls, ctx: ServiceContext, *, key: str, caller: str | None, equipment_id: str,
           provisioning: ProvisioningRequest, callback_url: str | None = None) -> IdempotentCreate:
        return cls(scope_digest(caller or NO_CALLER, equipment_id, key),
                   fingerprint(provisioning, ctx.settings.idempotency.fingerprint_secret,
                               callback_url=callback_url))


async def create_once(ctx: ServiceContext, create: IdempotentCreate, task_id: str,
                      enqueue: Callable[[], Awaitable[None]]) -> HTTPResponse:
    """Claim the key for ``task_id`` and ``enqueue`` it, or answer from the key's record."""
    held = await ctx.idempotency.claim(create.scope, create.fingerprint, task_id)
    if held is not None:
        return _answer_again(ctx, create, held)
    try:
        await enqueue()
    except BaseException:
        await _release(ctx, create, task_id)
        raise
    await _confirm(ctx, create, task_id)
    _outcome(ctx, "created")
    return contract.task_created(task_id)


def _answer_again(ctx: ServiceContext, create: IdempotentCreate, held: KeyRecord) -> HTTPResponse:
    if held.fingerprint != create.fingerprint:
        _outcome(ctx, "mismatch")
        raise IdempotencyKeyReused()
    if held.state is KeyState.CLAIMED:
        _outcome(ctx, "in_progress")
        raise IdempotentRequestInProgress()
    _outcome(ctx, "replayed")
    annotate(**{"task.id": held.task_id})
    replay = contract.task_created(held.task_id)
    replay.headers[REPLAYED_HEADER] = "true"
    return replay


async def _confirm(ctx: ServiceContext, create: IdempotentCreate, task_id: str) -> None:
    # The task is queued whatever happens here, so the client is told 200. If the record
    # cannot be turned ``queued``, the claim expires by itself and the key is free again.
    try:
        if not await ctx.idempotency.confirm(create.scope, create.fingerprint, task_id):
            log.warning("idempotency claim expired and was taken during the create",
                        extra={"task_id": task_id})
    except StoreUnavailable as error:
        log.warning("idempotency key not confirmed: %s", error, extra={"task_id": task_id})


async def _release(ctx: ServiceContext, create: IdempotentCreate, task_id: str) -> None:
    try:
        await ctx.idempotency.release(create.scope, task_id)
    except StoreUnavailable as error:  # the claim expires by itself
        log.warning("idempotency key not released: %s", error, extra={"task_id": task_id})
    _outcome(ctx, "released")


def _outcome(ctx: ServiceContext, outcome: str) -> None:
    ctx.metrics.idempotency.labels(outcome=outcome).inc()
    annotate(**{"idempotency.outcome": outcome})
