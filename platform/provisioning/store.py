"""The task store: task records in Redis hashes, with transitions that never go backwards.

A record is ``{prefix}task:{equipment id}:{uuid}`` holding equipment_id, status, failure, timestamps
(created_at, running_at, finished_at, cancel_requested_at), the Service A attempts and the
trace id: O(1) fields, never a credential. Every write renews the TTL, so a task waiting in a
long queue outlives its wait. A transition runs as one Lua script: it applies only when the new
status ranks above the current one (pending < running < completed | failed | cancelled), so a
late ``running`` or a duplicated result cannot overwrite a final status.

Per task, ``{prefix}events:{equipment id}:{uuid}`` is its event log (``task_events``): a stream of at
most ``TASK_EVENT_LOG_LIMIT`` entries, one per change, written by the same script as the change
(``_EMIT``), which also publishes "{task id} {type}" on ``{prefix}task-events`` for the waiters
of Service B (``api.waiters``). A record with a ``callback_url`` gets ``webhook_queued`` once its
webhook is on the webhooks queue (``webhooks.outbox``); until then a final transition, a stale
one on a final task and a cancel hand the URL back to their caller.

Per device (``{prefix}equipment:{equipment id}:...``), bounded and expiring with the task TTL:

- ``:tasks``, a sorted set of the device's task ids scored by creation time, written in the
  create's script and trimmed there to the ``history_limit`` newest (the v2 history);
- ``:active``, the task id of the device's unfinished task, in ``reject`` mode
  (``create(exclusive=True)``) and ``serialize`` mode (the task holding the device's turn); a
  final transition, a cancel or a delete of that task removes it (compare-and-delete inside the
  same script);
- ``:waiting``, serialize mode only: a list of the ids of the tasks waiting for the device's
  turn, in creation order, at most ``EQUIPMENT_MAX_WAITING`` (see ``serialization``).

**One key layout for one node, Sentinel and Redis Cluster.** Every key of a device carries the
hash tag ``{equipment id}``, so all of them live in one cluster slot: a script may touch a
task's record, its event log and its device's keys together (create, transition, cancel,
delete), and a serialize-mode hand-over may read the records of the device's other tasks. Each
script declares the keys it writes in ``KEYS``; the records that create and advance only read
(the device's other tasks, named by ids they find in the device's keys) are built from a prefix
in ``ARGV``, in the same slot. Notices go out by classic ``PUBLISH``, which a cluster forwards
to every node (``redis_connection``).

A caller that knows the task's equipment id passes it (``equipment_id=``): the classic routes,
the worker's and the result's messages, cancel and serialization all do. A lookup that only
knows the task id (the v2 detail, the event stream, the webhook outbox) goes through the
index ``{prefix}task-device:{uuid}`` -> equipment id, written before the create's script
(with the task's TTL, written again by its final transition and by a restore, so it lives as
long as the record and comes back after a failover lost it). An index without a record (a
create that was refused, or not written) reads as no task.

Durability across a failover. Redis replicates asynchronously: a write the master acknowledged
can be missing on the replica Sentinel (or a cluster) promotes. Two rules keep a task answered 200 from
being lost:

- **Durable writes** (``REDIS_WAIT_REPLICAS`` = n > 0): the writes no failover may lose, the
  create (before the 200 and before its message is published), every final transition (the
  result's, before its message is acked; the tombstone of an unconfirmed publish) and a
  restore of a final record, are followed on the same connection by ``WAIT n timeout``. Fewer
  than n acknowledgements in ``REDIS_WAIT_TIMEOUT_SECONDS`` is ``StoreUnavailable``: the create
  takes its record back and answers 500 (its message is never published), the results consumer
  holds the result and retries. A retry that finds its own earlier write (the transition is
  then stale) renews the record's TTL, so its ``WAIT`` still confirms that write. Deploy
  n + 1 replicas or more to stay writable while one server is down: with n replicas, writes
  wait until the failed server is back as a replica.
- **Restore** (with Sentinel or a cluster, ``restorable``): a task message or a result whose task has no
  record writes it back from the message (``restore``: running from a task, final from a
  result), instead of dead-lettering it as unknown. A refused create keeps its tombstone (a
  record: nothing is restored over it), and a deleted record (a publish that never left) has no
  message. A restored record is marked ``restored`` and has lost its trace id, its callbackUrl
  and its earlier events; restored from a result, its creation time is the result's.

With n = 0 (the default), only the restore protects a 200: a create acknowledged and lost
together with its unconfirmed publish's tombstone would then run although it answered 500.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from . import names
from .backoff import Backoff
from .errors import EquipmentBusy, EquipmentQueueFull, StoreUnavailable
from .models import FailureReason, TaskRecord, TaskStatus
from .redis_connection import store_client
from .settings import RedisSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
Command = tuple[Any, ...]  # a Redis command and its arguments, as ``execute_command`` takes them

# What a Redis call raises when Redis is away: the client's own errors, and, from uvloop, a
# RuntimeError when a connect races the server closing ("unable to perform operation on
# <TCPTransport closed=True>"). The cluster client raises RedisClusterException, which is not
# a RedisError, when no node answers or a slot has no master in its map (mid-failover).
REDIS_UNAVAILABLE = (RedisError, RedisClusterException, OSError, RuntimeError)

# While Redis is away, a consumer holding a message retries its store operation this way.
STORE_RETRY = Backoff(initial_seconds=0.2, max_seconds=5.0)

STATUS_RANK = {
    TaskStatus.PENDING: 0,
    TaskStatus.RUNNING: 1,
    TaskStatus.COMPLETED: 2,
    TaskStatus.FAILED: 2,
    TaskStatus.CANCELLED: 2,
}
# The ranks as the Lua script gets them: the one definition serves both sides.
_RANKS = [item for status, rank in STATUS_RANK.items() for item in (status.value, rank)]

ACTIVE_SUFFIX = ":active"  # {prefix}equipment:{id}:active, the device's unfinished task
HISTORY_SUFFIX = ":tasks"  # {prefix}equipment:{id}:tasks, the device's recent tasks
WAITING_SUFFIX = ":waiting"  # {prefix}equipment:{id}:waiting, serialize mode: ids in turn order

# Shared by the scripts below: ``settle(the device's active key, task id, final?, ttl)`` keeps
# the device's ``active`` pointer right once the task changed: removed when the task ended, its
# TTL renewed while the task goes on. Only touches the key when it names this task
# (compare-and-delete).
_SETTLE = """
local function settle(active, task, final, ttl)
  if redis.call('GET', active) == task then
    if final then redis.call('DEL', active) else redis.call('EXPIRE', active, ttl) end
  end
end
"""

# Shared by the scripts that change a task: ``emit(events key, {channel, limit, ttl}, task id,
# type, field/value pairs)`` appends an event to the task's log (a stream of at most ``limit``
# entries, expiring with the task) and publishes "{task id} {type}" on the events channel, in
# the same script as the change it reports: a change is never made without its notice.
# ``callback(task key)`` is the task's callbackUrl while its webhook is not queued yet.
_EMIT = """
local function emit(events, notice, task, kind, ...)
  redis.call('XADD', events, 'MAXLEN', notice[2], '*', 'type', kind, ...)
  redis.call('EXPIRE', events, notice[3])
  redis.call('PUBLISH', notice[1], task .. ' ' .. kind)
end
local function callback(key)
  local url, queued = unpack(redis.call('HMGET', key, 'callback_url', 'webhook_queued'))
  if url and not queued then return url end
  return ''
end
"""

# KEYS[1] the task, KEYS[2] its events, KEYS[3] its device's unfinished task; ARGV: 1 new
# status, 2 its rank, 3 failure ("" for none), 4 now, 5 ttl, 6 is_final, 7 the status the task
# must have now ("" for any), 8 attempts ("" for none), 9 the task id, 10 the events channel,
# 11 the event log's limit, then the ranks as status/rank pairs.
# Returns {outcome, status before, created_at, callback}: outcome is "applied", "stale" or
# "missing"; callback is the task's callbackUrl when it is final (now, or already) and its
# webhook not queued yet, else "".
_TRANSITION = _SETTLE + _EMIT + """
local current, created = unpack(redis.call('HMGET', KEYS[1], 'status', 'created_at'))
if not current then return {'missing', '', '', ''} end
local rank = {}
for i = 12, #ARGV, 2 do rank[ARGV[i]] = tonumber(ARGV[i + 1]) end
local function stale()
  if rank[current] == 2 then return {'stale', current, created, callback(KEYS[1])} end
  return {'stale', current, created, ''}
end
if ARGV[7] ~= '' and current ~= ARGV[7] then return stale() end
if tonumber(ARGV[2]) <= rank[current] then return stale() end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'failure', ARGV[3]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'attempts', ARGV[8]) end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[1] .. '_at', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
settle(KEYS[3], ARGV[9], ARGV[6] == '1', ARGV[5])
local fields = {}
if ARGV[3] ~= '' then fields[#fields + 1] = 'failure'; fields[#fields + 1] = ARGV[3] end
if ARGV[8] ~= '' then fields[#fields + 1] = 'attempts'; fields[#fields + 1] = ARGV[8] end
emit(KEYS[2], {ARGV[10], ARGV[11], ARGV[5]}, ARGV[9], ARGV[1], 'at', ARGV[4], unpack(fields))
if ARGV[6] == '1' then return {'applied', current, created, callback(KEYS[1])} end
return {'applied', current, created, ''}
"""

# KEYS[1] the task, KEYS[2] the device's history, KEYS[3] the device's unfinished task, KEYS[4]
# the device's waiting tasks, KEYS[5] the task's events. ARGV: 1 task id, 2 equipment id, 3 now,
# 4 ttl, 5 history limit, 6 mode ("0" parallel, "1" reject, "2" serialize), 7 trace id ("" for
# none), 8 the key prefix of the device's task records, 9 pending, 10 running, 11 the most
# tasks waiting per device (serialize), 12 the events channel, 13 the event log's limit,
# 14 callbackUrl ("" for none).
# Returns {outcome, task id, depth}: {"created", "", 0}; {"busy", the unfinished task} (reject;
# nothing written); {"full", the unfinished task, depth} (serialize, the waiting list is at its
# bound; nothing written); {"park", the unfinished task or "", depth} (serialize: the record is
# written with ``parked``, its id appended to the waiting list, which now holds ``depth``).
_CREATE = _EMIT + """
local park = false
if ARGV[6] ~= '0' then
  local active = redis.call('GET', KEYS[3])
  local busy = false
  if active then
    local status = redis.call('HGET', ARGV[8] .. active, 'status')
    busy = status == ARGV[9] or status == ARGV[10]
  end
  if ARGV[6] == '1' and busy then return {'busy', active, 0} end
  if ARGV[6] == '2' then
    -- Behind every task already waiting, even when the turn is free for a moment: creation order.
    local depth = redis.call('LLEN', KEYS[4])
    if busy or depth > 0 then
      if depth >= tonumber(ARGV[11]) then
        return {'full', active or redis.call('LINDEX', KEYS[4], 0), depth}
      end
      park = busy and active or ''  -- a string, even '', is true in Lua: park behind it
    end
  end
end
redis.call('HSET', KEYS[1], 'equipment_id', ARGV[2], 'status', ARGV[9],
           'created_at', ARGV[3], 'updated_at', ARGV[3])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'trace_id', ARGV[7]) end
if ARGV[14] ~= '' then redis.call('HSET', KEYS[1], 'callback_url', ARGV[14]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
emit(KEYS[5], {ARGV[12], ARGV[13], ARGV[4]}, ARGV[1], ARGV[9], 'at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[4])
if park then
  redis.call('HSET', KEYS[1], 'parked', '1')
  local depth = redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
  return {'park', park, depth}
end
if ARGV[6] ~= '0' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4]) end
return {'created', '', 0}
"""

# KEYS[1] the task, KEYS[2] its events, KEYS[3] its device's unfinished task. ARGV: 1 the
# equipment id it must belong to, 2 now, 3 ttl, 4 the task id, 5 (unused), 6 pending,
# 7 running, 8 cancelled, 9 the events channel, 10 the event log's limit.
# Returns {outcome, status before, callback}: "cancelled" (it was pending), "requested" (it is
# running: only the request is recorded, the first one's time kept), "final" or "missing";
# callback as the transition's (the callbackUrl of a final task whose webhook is not queued).
_CANCEL = _SETTLE + _EMIT + """
local status, equipment = unpack(redis.call('HMGET', KEYS[1], 'status', 'equipment_id'))
if not status or equipment ~= ARGV[1] then return {'missing', '', ''} end
if status == ARGV[6] then
  redis.call('HSET', KEYS[1], 'status', ARGV[8], 'updated_at', ARGV[2], 'finished_at', ARGV[2],
             'cancel_requested_at', ARGV[2], 'attempts', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  settle(KEYS[3], ARGV[4], true, ARGV[3])
  emit(KEYS[2], {ARGV[9], ARGV[10], ARGV[3]}, ARGV[4], ARGV[8], 'at', ARGV[2], 'attempts', 0)
  return {'cancelled', status, callback(KEYS[1])}
end
if status == ARGV[7] then
  if redis.call('HSETNX', KEYS[1], 'cancel_requested_at', ARGV[2]) == 1 then
    redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {'requested', status, ''}
end
return {'final', status, callback(KEYS[1])}
"""

# KEYS[1] the task, KEYS[2] its events. ARGV: 1 the task id, 2 the events channel, 3 the event
# log's limit, 4 ttl, 5 now, 6 the attempt's number, 7 its outcome. Records one Service A
# attempt in the task's event log; nothing when the task has no record.
_ATTEMPT = _EMIT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
emit(KEYS[2], {ARGV[2], ARGV[3], ARGV[4]}, ARGV[1], 'attempt', 'at', ARGV[5],
     'attempt', ARGV[6], 'outcome', ARGV[7])
return 1
"""

# KEYS[1] the task. Records that its webhook is queued (no-op when the record is gone).
_WEBHOOK_QUEUED = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'webhook_queued', '1') end
return 1
"""

# KEYS[1] the task, KEYS[2] its events, KEYS[3] its device's history, KEYS[4] the device's
# waiting list, KEYS[5] the device's unfinished task. ARGV: 1 the task id. Deletes the record,
# its events, its history entry, its place in the device's waiting list and the device's
# pointer to it.
_DELETE = _SETTLE + """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('LREM', KEYS[4], 0, ARGV[1])
settle(KEYS[5], ARGV[1], true, 0)
return 1
"""

# KEYS[1] the device's history. ARGV: 1 the highest score to include ("+inf" for the start),
# 2 "1" when the page continues after a cursor (the items tied on its score are fetched too,
# for the caller to skip those already seen), 3 how many. Newest first, with their scores.
_PAGE = """
local ties = 0
if ARGV[2] == '1' then ties = redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
                  'LIMIT', 0, tonumber(ARGV[3]) + ties)
"""

# Serialize mode: give the device's turn to its next task. KEYS[1] the device's unfinished
# task, KEYS[2] its waiting list. ARGV: 1 the key prefix of the device's task records (the
# records it reads share the device's hash tag), 2 pending, 3 running, 4 ttl.
# Returns {outcome, task id, depth, created_at, skipped ids...}: "busy" (the turn's task is
# pending or running and its message is on the tasks queue: nothing to do), "move" (the turn's
# task, just given the turn or given it by a hand-over that did not finish, is parked: its
# message must be moved), "idle" (no task waits; the pointer is deleted). Skipped: waiting
# tasks popped because they are no longer pending (cancelled, tombstoned, expired).
_ADVANCE = """
local skipped = {}
local active = redis.call('GET', KEYS[1])
if active then
  local status, parked, created = unpack(
    redis.call('HMGET', ARGV[1] .. active, 'status', 'parked', 'created_at'))
  if status == ARGV[2] and parked == '1' then
    return {'move', active, redis.call('LLEN', KEYS[2]), created}
  end
  if status == ARGV[2] or status == ARGV[3] then
    return {'busy', active, redis.call('LLEN', KEYS[2]), created or ''}
  end
end
while true do
  local id = redis.call('LPOP', KEYS[2])
  if not id then
    redis.call('DEL', KEYS[1])
    return {'idle', '', 0, '', unpack(skipped)}
  end
  local status, created = unpack(redis.call('HMGET', ARGV[1] .. id, 'status', 'created_at'))
  if status == ARGV[2] then
    redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
    return {'move', id, redis.call('LLEN', KEYS[2]), created, unpack(skipped)}
  end
  skipped[#skipped + 1] = id
end
"""

# Restores a record that Redis lost (a failover: replication is asynchronous) from a message.
# KEYS[1] the task, KEYS[2] its events, KEYS[3] the device's history. ARGV: 1 task id,
# 2 equipment id, 3 status, 4 created_at, 5 the status's time, 6 ttl, 7 "1" when final,
# 8 failure ("" for none), 9 attempts ("" for none), 10 the events channel, 11 the event log's
# limit, 12 the history limit. Writes nothing and returns 0 when the task has a record.
_RESTORE = _EMIT + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'equipment_id', ARGV[2], 'status', ARGV[3], 'created_at', ARGV[4],
           'updated_at', ARGV[5], 'restored', '1')
local fields = {}
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[5])
  if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[1], 'failure', ARGV[8])
    fields[#fields + 1] = 'failure'; fields[#fields + 1] = ARGV[8]
  end
  if ARGV[9] ~= '' then
    redis.call('HSET', KEYS[1], 'attempts', ARGV[9])
    fields[#fields + 1] = 'attempts'; fields[#fields + 1] = ARGV[9]
  end
else
  redis.call('HSET', KEYS[1], ARGV[3] .. '_at', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
emit(KEYS[2], {ARGV[10], ARGV[11], ARGV[6]}, ARGV[1], ARGV[3], 'at', ARGV[5], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[12]) + 1))
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
"""

DEFAULT_HISTORY_LIMIT = 100


class TransitionOutcome(enum.StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the task already is at or past the requested status
    MISSING = "missing"  # no such task (never created, deleted or expired)


@dataclass(frozen=True, slots=True)
class Transition:
    outcome: TransitionOutcome
    previous: TaskStatus | None
    created_at: float | None = None
    # The task's callbackUrl when it is final (by this transition or before) and its webhook
    # is not queued yet (``mark_webhook_queued``): whoever holds the trigger queues it.
    callback_url: str | None = None


class CancelOutcome(enum.StrEnum):
    """What ``TaskStore.cancel`` did (also the cancellation metric's label)."""

    CANCELLED = "cancelled"  # it was pending: now final ``cancelled``, Service A never called
    REQUESTED = "requested"  # it is running: the request is recorded, the outcome will be too
    ALREADY_FINAL = "final"  # nothing to cancel
    MISSING = "missing"  # no such task for this equipment id


class Cancellation(NamedTuple):
    """What ``TaskStore.cancel`` did, the status before, and (as ``Transition.callback_url``)
    the callbackUrl of a final task whose webhook is not queued yet."""

    outcome: CancelOutcome
    previous: TaskStatus | None
    callback_url: str | None = None


class Admission(enum.StrEnum):
    """What a create did about the device's turn (serialize mode)."""

    RUN = "run"  # the task has the turn (or the mode has no turns): publish it to the tasks queue
    PARK = "park"  # the task waits its turn: publish it to its parking queue


@dataclass(frozen=True, slots=True)
class Created:
    """A written record: its creation time and admission; ``waiting`` is the device's waiting
    depth after a park, and ``behind`` the task holding the turn ("" when it is free now)."""

    created_at: float
    admission: Admission = Admission.RUN
    waiting: int = 0
    behind: str = ""


class AdvanceOutcome(enum.StrEnum):
    BUSY = "busy"
    MOVE = "move"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class Advance:
    """One step of a hand-over (``TaskStore.advance``)."""

    outcome: AdvanceOutcome
    task_id: str  # the task holding the turn ("" when idle)
    waiting: int  # the device's waiting depth after the step
    created_at: float | None
    skipped: tuple[str, ...]  # waiting tasks dropped: no longer pending


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a device's tasks, newest first; ``next_after`` is where the next page starts
    (the score and id of this page's last entry), None on the last page."""

    records: list[TaskRecord]
    next_after: tuple[float, str] | None


class TaskStore:
    """Create, read and transition task records. Owns its Redis connection pool."""

    def __init__(self, settings: RedisSettings, *, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self._settings = settings
        self._history_limit = history_limit
        # One pool per process (``redis_connection``: one node, Sentinel's master or a cluster), blocking
        # under bursts, each command retried once or twice on a fresh connection.
        self._client = store_client(settings)
        self._redis: aioredis.Redis = self._client.redis
        self._transition = self._redis.register_script(_TRANSITION)
        self._create = self._redis.register_script(_CREATE)
        self._cancel = self._redis.register_script(_CANCEL)
        self._delete = self._redis.register_script(_DELETE)
        self._page = self._redis.register_script(_PAGE)
        self._advance = self._redis.register_script(_ADVANCE)
        self._attempt = self._redis.register_script(_ATTEMPT)
        self._webhook_queued = self._redis.register_script(_WEBHOOK_QUEUED)
        self._restore = self._redis.register_script(_RESTORE)
        self._closed = False

    async def __aenter__(self) -> TaskStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        """The store's client, shared by the worker's device leases (``equipment_lease``): one
        pool per process, closed with the store."""
        return self._redis

    def key(self, task_id: str, equipment_id: str) -> str:
        """The task's record, under its device's hash tag."""
        return f"{self._task_prefix(equipment_id)}{task_id}"

    def _task_prefix(self, equipment_id: str) -> str:
        return f"{self._settings.key_prefix}{names.TASK_KEY}{{{equipment_id}}}:"

    def events_key(self, task_id: str, equipment_id: str) -> str:
        """The task's event log: a stream of its transitions and Service A attempts."""
        return f"{self._settings.key_prefix}{names.EVENTS_KEY}{{{equipment_id}}}:{task_id}"

    def device_key(self, task_id: str) -> str:
        """The index from a task id to its equipment id, for the lookups that only know the
        task (``device``)."""
        return f"{self._settings.key_prefix}{names.TASK_DEVICE_KEY}{task_id}"

    async def device(self, task_id: str, equipment_id: str | None = None) -> str | None:
        """The task's equipment id: ``equipment_id`` when the caller knows it, else the index's
        (None when there is none: never created, expired, or a create that was refused)."""
        if equipment_id is not None:
            return equipment_id
        try:
            found = await self._redis.get(self.device_key(task_id))
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot find a task's device: {error}") from error
        return None if found is None else str(found)

    async def _index(self, task_id: str, equipment_id: str) -> None:
        """Write (or renew) the task's index entry for as long as its record lives."""
        try:
            await self._redis.set(self.device_key(task_id), equipment_id,
                                  ex=self._settings.task_ttl_seconds)
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot index a task: {error}") from error

    @property
    def events_channel(self) -> str:
        """Where every event is announced, as "{task id} {event type}" (``task_events``)."""
        return f"{self._settings.key_prefix}{names.EVENTS_CHANNEL}"

    @property
    def _notice(self) -> list[Any]:
        return [self.events_channel, self._settings.event_log_limit]

    def _device_key(self, equipment_id: str, suffix: str) -> str:
        return f"{self._settings.key_prefix}{names.EQUIPMENT_KEY}{{{equipment_id}}}{suffix}"

    def history_key(self, equipment_id: str) -> str:
        return self._device_key(equipment_id, HISTORY_SUFFIX)

    def active_key(self, equipment_id: str) -> str:
        return self._device_key(equipment_id, ACTIVE_SUFFIX)

    def waiting_key(self, equipment_id: str) -> str:
        return self._device_key(equipment_id, WAITING_SUFFIX)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"Redis ping failed: {error}") from error

    def restorable(self, created_at: float, *, now: float | None = None) -> bool:
        """Whether a message about a task that has no record, created at ``created_at``,
        restores the record (``restore``): with Sentinel or a cluster, where a failover may lose writes
        the old master acknowledged, and only while the record would not have expired yet.
        On one node a record only goes missing by expiry or deletion (whose message never
        left), and such a message is poison."""
        age = (time.time() if now is None else now) - created_at
        failover = bool(self._settings.sentinels) or self._settings.cluster
        return failover and age < self._settings.task_ttl_seconds

    async def _durable(self, script: AsyncScript, keys: list[str], args: list[Any], *,
                       durable: bool, fence: str | None = None, after: Command | None = None,
                       ) -> tuple[Any, int | None]:
        """Run ``script``; when ``durable`` and ``REDIS_WAIT_REPLICAS`` is set, follow it on the
        same connection with ``WAIT``: the number of replicas that acknowledged every write of
        this connection so far, else None. ``fence`` is a key to renew as well, so that a script
        that wrote nothing this time (a retry finding its own earlier write) still makes ``WAIT``
        confirm that earlier write: the replication stream is ordered, so acknowledging the
        renewal acknowledges everything before it.

        ``after`` is a command that goes with the script in the same round trip: one pipeline
        (not a transaction), which Redis runs in order on one connection. It is meant to be
        idempotent: after a Redis restart (the script no longer cached) it runs twice."""
        replicas = self._settings.wait_replicas if durable else 0
        if after is None and not replicas:
            return await script(keys=keys, args=args), None
        try:
            return await self._pipelined(script, keys, args, replicas, fence, after)
        except NoScriptError:  # a restarted or failed-over Redis: load it, and run all again
            await self._redis.script_load(str(script.script))
            return await self._pipelined(script, keys, args, replicas, fence, after)

    async def _pipelined(self, script: AsyncScript, keys: list[str], args: list[Any],
                         replicas: int, fence: str | None, after: Command | None
                         ) -> tuple[Any, int | None]:
        wait: dict[str, Any] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            if self._settings.cluster:
                # A cluster pipeline sends each node's commands on one connection, in order: the
                # script goes to its keys' node, and so does WAIT (it has no key), by name. A
                # cluster pipeline does not load scripts, so the script goes as EVAL.
                pipe.eval(str(script.script), len(keys), *keys, *args)
                wait["target_nodes"] = self._cluster_node(keys[0])
            else:
                # EVALSHA itself, not the script object: a pipeline would check it with SCRIPT
                # EXISTS first, a round trip of its own every time.
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            if after is not None:
                pipe.execute_command(*after)
            if replicas:
                if fence is not None:
                    pipe.expire(fence, self._settings.task_ttl_seconds)
                pipe.execute_command("WAIT", replicas,
                                     round(self._settings.wait_timeout_seconds * 1000), **wait)
            rows: list[Any] = await pipe.execute()
        return rows[0], int(rows[-1]) if replicas else None

    def _index_command(self, task_id: str, equipment_id: str) -> Command:
        """The write of the task's index entry, for as long as its record lives."""
        return ("SET", self.device_key(task_id), equipment_id, "EX", self._settings.task_ttl_seconds)

    def _cluster_node(self, key: str) -> Any:
        """The master that serves ``key``'s slot, as the cluster client knows it now."""
        cluster = self._client.cluster
        assert cluster is not None
        return cluster.get_node_from_key(key)

    async def _renew_index(self, task_id: str, equipment_id: str) -> None:
        """Write the index again once the task is final, so it lasts as long as the record (and
        comes back if a failover lost it). Best effort: the record is written already."""
        try:
            await self._index(task_id, equipment_id)
        except StoreUnavailable as error:
            log.warning("task index not renewed: %s", error, extra={"task_id": task_id})

    def _confirm(self, acknowledged: int | None, what: str) -> None:
        """Fewer replicas than ``REDIS_WAIT_REPLICAS`` acknowledged a durable write in time: a
        failover now could lose it, so it counts as not stored."""
        if acknowledged is not None and acknowledged < self._settings.wait_replicas:
            raise StoreUnavailable(
                f"{what}: {acknowledged} of {self._settings.wait_replicas} replicas acknowledged "
                f"the write within {self._settings.wait_timeout_seconds}s")

    async def create(self, task_id: str, equipment_id: str, *, now: float | None = None,
                     exclusive: bool = False, trace_id: str | None = None,
                     callback_url: str | None = None) -> float:
        """Write a new ``pending`` record and its entry in the device's history; returns its
        creation time. With ``exclusive`` (``reject`` mode), refuse with ``EquipmentBusy`` and
        write nothing while the device has an unfinished task, else record this one as it."""
        created = await self._write(task_id, equipment_id, mode="1" if exclusive else "0",
                                    now=now, trace_id=trace_id, callback_url=callback_url)
        return created.created_at

    async def create_in_turn(self, task_id: str, equipment_id: str, *, max_waiting: int,
                             now: float | None = None, trace_id: str | None = None,
                             callback_url: str | None = None) -> Created:
        """``create`` in serialize mode: a task created while the device has an unfinished
        task, or tasks waiting, is written ``parked`` and appended to the device's waiting list
        (``Admission.PARK``), else it takes the turn (``Admission.RUN``). With ``max_waiting``
        tasks waiting already, refuse with ``EquipmentQueueFull`` and write nothing."""
        return await self._write(task_id, equipment_id, mode="2", now=now, trace_id=trace_id,
                                 max_waiting=max_waiting, callback_url=callback_url)

    async def _write(self, task_id: str, equipment_id: str, *, mode: str, now: float | None,
                     trace_id: str | None, max_waiting: int = 0,
                     callback_url: str | None = None) -> Created:
        created = time.time() if now is None else now
        # The index first, on its own: whoever sees the record can find it from its id alone.
        # A create that is refused leaves it dangling; a task id without a record reads as
        # missing. Not in one round trip with the script: a create whose round trip timed out
        # (a stalled connection) is answered 500, and if both then ran late, the record would
        # read as pending for ever with no message behind it; on its own, a stalled index
        # write fails the create before any record is sent.
        await self._index(task_id, equipment_id)
        try:
            (outcome, other, depth), acknowledged = await self._durable(
                self._create,
                keys=[self.key(task_id, equipment_id), self.history_key(equipment_id),
                      self.active_key(equipment_id), self.waiting_key(equipment_id),
                      self.events_key(task_id, equipment_id)],
                args=[task_id, equipment_id, repr(created), self._settings.task_ttl_seconds,
                      self._history_limit, mode, trace_id or "", self._task_prefix(equipment_id),
                      TaskStatus.PENDING.value, TaskStatus.RUNNING.value, max_waiting,
                      *self._notice, callback_url or ""],
                durable=True,
            )
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot create task: {error}") from error
        if outcome == "busy":
            raise EquipmentBusy(other)
        if outcome == "full":
            raise EquipmentQueueFull(other or "")
        try:
            self._confirm(acknowledged, "cannot create task")
        except StoreUnavailable:
            # Not published yet, and never will be: take the record back (best effort), so it
            # neither reads as pending nor holds the device's turn.
            try:
                await self.delete(task_id, equipment_id=equipment_id)
            except StoreUnavailable as error:
                log.warning("unreplicated record not deleted: %s", error, extra={"task_id": task_id})
            raise
        if outcome == "park":
            return Created(created, Admission.PARK, int(depth), other or "")
        return Created(created)

    async def advance(self, equipment_id: str) -> Advance:
        """Serialize mode: one atomic step of handing the device's turn over (``_ADVANCE``)."""
        try:
            row: list[Any] = await self._advance(
                keys=[self.active_key(equipment_id), self.waiting_key(equipment_id)],
                args=[self._task_prefix(equipment_id), TaskStatus.PENDING.value,
                      TaskStatus.RUNNING.value, self._settings.task_ttl_seconds],
            )
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot hand a device's turn over: {error}") from error
        outcome, task_id, depth, created = row[:4]
        return Advance(AdvanceOutcome(outcome), task_id or "", int(depth),
                       float(created) if created else None, tuple(row[4:]))

    async def parked(self, task_id: str, equipment_id: str | None = None
                     ) -> tuple[TaskStatus | None, bool]:
        """A task's status (None when there is no record) and whether its message is parked."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return None, False
        try:
            status, parked = await self._redis.hmget(self.key(task_id, device), ["status", "parked"])
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read task: {error}") from error
        return (TaskStatus(str(status)) if status else None), parked == "1"

    async def unpark(self, task_id: str, equipment_id: str | None = None) -> None:
        """Record that a parked task's message is on the tasks queue now."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return
        try:
            await self._redis.hdel(self.key(task_id, device), "parked")
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot unpark task: {error}") from error

    async def cancel(self, task_id: str, equipment_id: str, *, now: float | None = None
                     ) -> Cancellation:
        """Cancel a task of ``equipment_id`` (AIP-151's CancelOperation, persistent in the
        record): a pending task becomes final ``cancelled``; a running one only records the
        request; a final one is left as it is."""
        try:
            outcome, previous, callback_url = await self._cancel(
                keys=[self.key(task_id, equipment_id), self.events_key(task_id, equipment_id),
                      self.active_key(equipment_id)],
                args=[equipment_id, repr(time.time() if now is None else now),
                      self._settings.task_ttl_seconds, task_id, "",
                      TaskStatus.PENDING.value, TaskStatus.RUNNING.value,
                      TaskStatus.CANCELLED.value, *self._notice],
            )
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot cancel task: {error}") from error
        if outcome == CancelOutcome.CANCELLED:
            await self._renew_index(task_id, equipment_id)
        return Cancellation(CancelOutcome(outcome), TaskStatus(previous) if previous else None,
                            callback_url or None)

    async def record_attempt(self, task_id: str, attempt: int, outcome: str, *,
                             now: float | None = None, equipment_id: str | None = None) -> None:
        """Add one Service A attempt (its number and outcome) to the task's event log."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return
        try:
            await self._attempt(
                keys=[self.key(task_id, device), self.events_key(task_id, device)],
                args=[task_id, *self._notice, self._settings.task_ttl_seconds,
                      repr(time.time() if now is None else now), attempt, outcome],
            )
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot record an attempt: {error}") from error

    async def events(self, task_id: str, *, after: str | None = None,
                     equipment_id: str | None = None) -> list[tuple[str, dict[str, str]]]:
        """The task's events after the event id ``after`` (all without it), oldest first, as
        (stream id, fields); at most the event log's limit."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return []
        try:
            rows: list[tuple[str, dict[str, str]]] = await self._redis.xrange(  # type: ignore[assignment]
                self.events_key(task_id, device), min="-" if after is None else f"({after}")
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read events: {error}") from error
        return [(event_id, fields) for event_id, fields in rows]

    async def mark_webhook_queued(self, task_id: str, equipment_id: str | None = None) -> None:
        """Record that the task's webhook is on the webhooks queue: no trigger queues it again."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return
        try:
            await self._webhook_queued(keys=[self.key(task_id, device)], args=[])
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot mark a webhook queued: {error}") from error

    async def tombstone(self, task_id: str, equipment_id: str | None = None) -> Transition:
        """Fail a task that is still ``pending`` as ``not_queued``: its create answered 500 (or
        never answered), so it must never run. STALE when it had left ``pending`` already."""
        return await self.transition(task_id, TaskStatus.FAILED, FailureReason.NOT_QUEUED,
                                     only_from=TaskStatus.PENDING, equipment_id=equipment_id)

    async def delete(self, task_id: str, equipment_id: str | None = None) -> None:
        """Delete the task's record, its events and its places in its device's keys."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return
        try:
            await self._delete(keys=[self.key(task_id, device), self.events_key(task_id, device),
                                     self.history_key(device), self.waiting_key(device),
                                     self.active_key(device)],
                               args=[task_id])
            await self._redis.delete(self.device_key(task_id))
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot delete task: {error}") from error

    async def history(self, equipment_id: str, *, limit: int,
                      after: tuple[float, str] | None = None) -> HistoryPage:
        """Up to ``limit`` of the device's tasks, newest first, starting after ``after``;
        entries whose record expired are skipped (the page may then hold fewer)."""
        try:
            rows: list[str] = await self._page(
                keys=[self.history_key(equipment_id)],
                args=["+inf" if after is None else repr(after[0]), "1" if after else "0", limit + 1],
            )
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read the history: {error}") from error
        entries = [(float(rows[i + 1]), rows[i]) for i in range(0, len(rows), 2)]
        if after is not None:
            # Same score: newest-first order is descending by member, so the ones already
            # shown are those from the cursor's member up.
            entries = [(score, member) for score, member in entries
                       if not (score == after[0] and member >= after[1])]
        more = len(entries) > limit
        entries = entries[:limit]
        records = await self.get_many([member for _, member in entries], equipment_id=equipment_id)
        return HistoryPage(
            [record for record in records if record is not None and record.equipment_id == equipment_id],
            entries[-1] if more else None,
        )

    async def get(self, task_id: str, equipment_id: str | None = None) -> TaskRecord | None:
        """The task's record, None when there is none; without ``equipment_id``, found through
        the task's index (one more read)."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return None
        try:
            fields: dict[str, str] = await self._redis.hgetall(self.key(task_id, device))  # type: ignore[assignment]
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read task: {error}") from error
        if not fields or "status" not in fields:
            return None
        return _record(task_id, fields)

    async def get_many(self, task_ids: Sequence[str], *, equipment_id: str | None = None
                       ) -> list[TaskRecord | None]:
        """``get`` for many tasks in one pipelined round trip (not a transaction: each record
        is read as it is at that moment), in the order asked; None for a task there is not.
        Without ``equipment_id`` (tasks of one device), a round trip to their index first. On
        a cluster, the pipeline is split per node."""
        try:
            if equipment_id is None:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for task_id in task_ids:
                        pipe.get(self.device_key(task_id))
                    devices: list[str | None] = await pipe.execute()
            else:
                devices = [equipment_id] * len(task_ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for task_id, device in zip(task_ids, devices, strict=True):
                    if device is not None:
                        pipe.hgetall(self.key(task_id, device))
                found: list[dict[str, str]] = await pipe.execute()
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot read tasks: {error}") from error
        rows = iter(found)
        records: list[TaskRecord | None] = []
        for task_id, device in zip(task_ids, devices, strict=True):
            fields = next(rows) if device is not None else None
            records.append(_record(task_id, fields) if fields and "status" in fields else None)
        return records

    async def transition(
        self,
        task_id: str,
        status: TaskStatus,
        failure: FailureReason | None = None,
        *,
        now: float | None = None,
        only_from: TaskStatus | None = None,
        attempts: int | None = None,
        equipment_id: str | None = None,
    ) -> Transition:
        """Move a task forward to ``status``; never backwards, atomically. With ``only_from``,
        only when the task is in exactly that status now (else the outcome is STALE).
        ``attempts`` (the calls made to Service A) is recorded with the change. A final
        transition renews the task's index, for as long as the record lives (sent with the
        script, so a final transition is one round trip)."""
        device = await self.device(task_id, equipment_id)
        if device is None:
            return Transition(TransitionOutcome.MISSING, None)
        args: list[Any] = [
            status.value,
            STATUS_RANK[status],
            failure.value if failure else "",
            repr(time.time() if now is None else now),
            self._settings.task_ttl_seconds,
            "1" if status.is_final else "0",
            only_from.value if only_from else "",
            "" if attempts is None else attempts,
            task_id,
            *self._notice,
            *_RANKS,
        ]
        key = self.key(task_id, device)
        try:
            (outcome, previous, created, callback_url), acknowledged = await self._durable(
                self._transition,
                keys=[key, self.events_key(task_id, device), self.active_key(device)], args=args,
                durable=status.is_final, fence=key,
                # In the same round trip, whatever the outcome: a duplicate's renewal is the
                # first one's again, and a missing record's index expires a TTL later.
                after=self._index_command(task_id, device) if status.is_final else None)
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot transition task: {error}") from error
        if outcome != TransitionOutcome.MISSING:
            self._confirm(acknowledged, "cannot transition task")
        return Transition(
            TransitionOutcome(outcome),
            TaskStatus(previous) if previous else None,
            float(created) if created else None,
            callback_url or None,
        )

    async def restore(self, task_id: str, equipment_id: str, status: TaskStatus, *,
                      created_at: float, failure: FailureReason | None = None,
                      attempts: int | None = None, now: float | None = None) -> bool:
        """Write back a record that Redis lost, from the message that proves the task exists
        (``restorable``): a task message restores it ``running``, a result its final
        status (durable, like a final transition). Marked ``restored``; its trace id, callback
        URL and earlier events are gone with it. False, writing nothing, when the task has a
        record (the caller then transitions it as usual)."""
        key = self.key(task_id, equipment_id)
        await self._index(task_id, equipment_id)
        try:
            written, acknowledged = await self._durable(
                self._restore,
                keys=[key, self.events_key(task_id, equipment_id), self.history_key(equipment_id)],
                args=[task_id, equipment_id, status.value, repr(created_at),
                      repr(time.time() if now is None else now), self._settings.task_ttl_seconds,
                      "1" if status.is_final else "0", failure.value if failure else "",
                      "" if attempts is None else attempts, *self._notice, self._history_limit],
                durable=status.is_final, fence=key)
        except REDIS_UNAVAILABLE as error:
            raise StoreUnavailable(f"cannot restore task: {error}") from error
        self._confirm(acknowledged, "cannot restore task")
        return bool(written)


def _record(task_id: str, fields: dict[str, str]) -> TaskRecord:
    failure = fields.get("failure")
    attempts = fields.get("attempts")
    return TaskRecord(
        task_id=task_id,
        equipment_id=fields.get("equipment_id", ""),
        status=TaskStatus(fields["status"]),
        created_at=float(fields.get("created_at", 0.0)),
        updated_at=float(fields.get("updated_at", 0.0)),
        failure=FailureReason(failure) if failure else None,
        finished_at=_time(fields, "finished_at"),
        running_at=_time(fields, "running_at"),
        cancel_requested_at=_time(fields, "cancel_requested_at"),
        attempts=int(attempts) if attempts else None,
        trace_id=fields.get("trace_id") or None,
        callback_url=fields.get("callback_url") or None,
    )


def _time(fields: dict[str, str], name: str) -> float | None:
    value = fields.get(name)
    return float(value) if value else None


async def until_available(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    task_id: str,
    backoff: Backoff = STORE_RETRY,
) -> T:
    """Run a store operation, retrying with backoff for as long as Redis is unavailable.

    Used by consumers that hold a message: holding it (rather than requeueing it) keeps it
    off the delivery limit, and if the process stops meanwhile the broker redelivers it.
    """
    pauses = backoff.delays()
    while True:
        try:
            return await operation()
        except StoreUnavailable as error:
            pause = next(pauses)
            log.warning("cannot %s yet, retrying in %.1fs: %s", what, pause, error,
                        extra={"task_id": task_id})
            await asyncio.sleep(pause)
