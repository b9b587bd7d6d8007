"""The OpenAPI 3.1 document of Service B, served at ``GET /openapi.json``.

Written by hand from the contract (README, "The API contract"): it is the contract, so it is
kept next to the code that answers it and checked against the real service by the tests. It
carries this process's bounds (``API_MAX_*``) and, with ``API_REQUIRE_JSON_CONTENT_TYPE``, the
415; its links lead from a create's ``taskId`` to every operation on the task, so a stateful
fuzzer or a generated client can follow a create to its status.
"""

from __future__ import annotations

from typing import Any

from ..errors import IdempotencyKeyReused, IdempotentRequestInProgress, UnsupportedMediaType
from ..models import EQUIPMENT_ID_MAX_LENGTH, EQUIPMENT_ID_PATTERN, VLAN_RANGE
from ..request_limits import DEFAULT_LIMITS, RequestLimits
from . import contract


def answer_schema(description: str, code: int, message: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"code": {"type": "integer", "const": code}}
    if message is not None:
        properties["message"] = {"type": "string", "const": message}
    else:
        properties["message"] = {"type": "string", "minLength": 1}
    return {
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["code", "message"], "properties": properties,
        }}},
    }


def _one_of(description: str, *answers: dict[str, Any]) -> dict[str, Any]:
    schemas = [a["content"]["application/json"]["schema"] for a in answers]
    return {"description": description, "content": {"application/json": {"schema": {"oneOf": schemas}}}}


EQUIPMENT_ID_SCHEMA = {"type": "string", "minLength": 6, "maxLength": EQUIPMENT_ID_MAX_LENGTH,
                       "pattern": f"^{EQUIPMENT_ID_PATTERN.pattern}$"}
EQUIPMENT_ID = {
    "name": "equipment_id", "in": "path", "required": True,
    "description": f"Letters and digits, 6 to {EQUIPMENT_ID_MAX_LENGTH} of them; anything else is "
                   "'equipment not found' (404).",
    "schema": EQUIPMENT_ID_SCHEMA,
}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The task's UUID; anything else is 'task not found'."}

EQUIPMENT_NOT_FOUND = answer_schema("Bad id", 404, "The requested equipment is not found")
TASK_NOT_FOUND = answer_schema("Unknown task", 404, "The requested task is not found")
INTERNAL = answer_schema("Not stored or not queued / provisioning failed", 500, contract.INTERNAL_ERROR)
INVALID = answer_schema("Invalid JSON or body; the message says which field and why", 400)
TOO_LARGE = answer_schema("Body larger than API_MAX_BODY_BYTES", 413)
NOT_JSON = answer_schema("API_REQUIRE_JSON_CONTENT_TYPE: the request's Content-Type is not "
                         "application/json (parameters such as charset allowed)", 415,
                         UnsupportedMediaType.message)
OVERLOADED = {**answer_schema("At the in-flight limit, or (creates) RabbitMQ blocks publishing "
                              "(a memory or disk alarm); retry after Retry-After seconds", 503,
                              contract.OVERLOADED),
              "headers": {"Retry-After": {"schema": {"type": "string"}}}}
UNAUTHORIZED = answer_schema("Missing or wrong bearer token (only when API_TOKENS is set)", 401,
                       "Unauthorized")

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Optional (IETF draft 'The Idempotency-Key HTTP Header Field'): a structured-field "
                   "string (\"...\") or the bare key, 1 to 255 printable ASCII characters, at most one. "
                   "Scoped to the caller (bearer token) and the equipment id; kept "
                   "IDEMPOTENCY_TTL_SECONDS. The same key and body answer the first 200 again, "
                   "with the same taskId.",
    # The bare key (printable ASCII, not starting with a quote or a space) or an sf-string.
    "schema": {"type": "string", "minLength": 1, "maxLength": 257,
               "pattern": r'^(?:[!#-~][ -~]{0,254}|"(?:[ !#-\[\]-~]|\\["\\]){1,255}")$'},
}
IDEMPOTENCY_IN_PROGRESS = {
    **answer_schema("Idempotency-Key: the first request with this key is still being processed; "
                    "retry after Retry-After seconds", 409,
                    IdempotentRequestInProgress.message),
    "headers": {"Retry-After": {"schema": {"type": "string"}}},
}
IDEMPOTENCY_MISMATCH = answer_schema(
    "Idempotency-Key: the key was already used with a different request body", 422,
    IdempotencyKeyReused.message)
IDEMPOTENT_REPLAYED = {"Idempotent-Replayed": {
    "description": "'true' when the answer replays the first answer to this Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]}}}

# -- cancellation, task detail and history (additions; the classic rows are unchanged) -------
CANCEL_ACCEPTED = answer_schema("Cancellation accepted: the task was pending (now cancelled, Service "
                                "A is never called) or is running (the request is recorded; the "
                                "call is not aborted and its outcome is recorded)", 202,
                                contract.CANCEL_ACCEPTED)
FINAL_STATE = _one_of(
    "Nothing to cancel: the task is final; the body is the classic GET's body for it",
    answer_schema("", 200, contract.COMPLETED),
    answer_schema("", contract.CANCELLED_CODE, contract.CANCELLED),
    answer_schema("", 404, "The requested equipment is not found"),
    answer_schema("", 500, contract.INTERNAL_ERROR),
)


def _naming_a_task(answer: dict[str, Any]) -> dict[str, Any]:
    schema = answer["content"]["application/json"]["schema"]
    schema["required"].append("taskId")
    schema["properties"]["taskId"] = {"type": "string", "format": "uuid"}
    return answer


EQUIPMENT_BUSY = _naming_a_task(answer_schema(
    "EQUIPMENT_CONCURRENCY=reject: the device has an unfinished task; taskId names it", 409,
    "Equipment already has a task in progress"))
EQUIPMENT_QUEUE_FULL = _naming_a_task(answer_schema(
    "EQUIPMENT_CONCURRENCY=serialize: the device has EQUIPMENT_MAX_WAITING tasks waiting; taskId "
    "names the one holding its turn", 409, "Equipment has too many tasks waiting"))
FAILURE_REASON = {"type": ["string", "null"],
                  "enum": ["equipment_not_found", "rejected_by_service_a", "service_a_unavailable",
                           "not_queued", None]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
TASK_DETAIL = {
    "type": "object",
    "required": ["taskId", "equipmentId", "status", "failureReason", "createdAt", "runningAt",
                 "finishedAt", "cancelRequestedAt", "cancelRequested", "attempts", "traceId"],
    "properties": {
        "taskId": {"type": "string", "format": "uuid"},
        "equipmentId": EQUIPMENT_ID_SCHEMA,
        "status": {"type": "string",
                   "enum": ["pending", "running", "completed", "failed", "cancelled"]},
        "failureReason": FAILURE_REASON,
        "createdAt": {"type": "string", "format": "date-time"},
        "runningAt": _NULLABLE_TIME, "finishedAt": _NULLABLE_TIME,
        "cancelRequestedAt": _NULLABLE_TIME,
        "cancelRequested": {"type": "boolean"},
        "attempts": {"type": ["integer", "null"], "minimum": 0,
                     "description": "Calls made to Service A; null until the task is final"},
        "traceId": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$",
                    "description": "The create's trace (open it in Jaeger); null when tracing was off"},
    },
}
HISTORY_PAGE = {
    "type": "object", "required": ["tasks", "nextCursor"],
    "properties": {"tasks": {"type": "array", "maxItems": 100, "items": TASK_DETAIL},
                   "nextCursor": {"type": ["string", "null"], "maxLength": 128}},
}
HISTORY_QUERY = [
    {"name": "limit", "in": "query", "required": False,
     "description": "Tasks per page, 1 to 100 (default 20); anything else is 400",
     "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "The nextCursor of the previous page (opaque); anything else is 400",
     "schema": {"type": "string", "maxLength": 128}},
]


def _add_cancellation_and_history(document: dict[str, Any]) -> None:
    """DELETE of a task, the v2 detail and history routes, and the 409s of reject and
    serialize mode on create."""
    paths = document["paths"]
    create = paths["/api/v1/equipment/cpe/{equipment_id}"]["post"]["responses"]
    if "409" in create:  # another 409 is documented already: any, with its headers
        create["409"] = {**_one_of("Conflict", create["409"], EQUIPMENT_BUSY, EQUIPMENT_QUEUE_FULL),
                         "headers": create["409"].get("headers", {})}
    else:
        create["409"] = _one_of("Conflict", EQUIPMENT_BUSY, EQUIPMENT_QUEUE_FULL)
    # Links from a create to the task's operations, so a stateful run cancels and reads real tasks.
    task = {"task_id": "$response.body#/taskId"}
    device = {"equipment_id": "$request.path.equipment_id"}
    create["200"].setdefault("links", {}).update({
        "TaskStatus": {"operationId": "taskStatus", "parameters": {**device, **task}},
        "CancelTask": {"operationId": "cancelTask", "parameters": {**device, **task}},
        "TaskDetail": {"operationId": "taskDetail", "parameters": task},
        "EquipmentTasks": {"operationId": "equipmentTasks", "parameters": device},
    })
    paths["/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"]["delete"] = {
        "operationId": "cancelTask",
        "description": "Cancel a task (after Google AIP-151's CancelOperation).",
        "parameters": [EQUIPMENT_ID, TASK_ID],
        "responses": {
            "200": FINAL_STATE, "202": CANCEL_ACCEPTED,
            "404": _one_of("Equipment or task not found", EQUIPMENT_NOT_FOUND, TASK_NOT_FOUND),
            "500": INTERNAL, "503": OVERLOADED,
        },
    }
    paths["/api/v2/tasks/{task_id}"] = {"get": {
        "operationId": "taskDetail",
        "parameters": [TASK_ID],
        "responses": {
            "200": {"description": "The task; timestamps ISO-8601 UTC with milliseconds",
                    "content": {"application/json": {"schema": TASK_DETAIL}}},
            "404": TASK_NOT_FOUND, "500": INTERNAL, "503": OVERLOADED,
        },
    }}
    paths["/api/v2/equipment/{equipment_id}/tasks"] = {"get": {
        "operationId": "equipmentTasks",
        "description": "The device's recent tasks (at most EQUIPMENT_HISTORY_LIMIT, within the "
                       "task TTL), newest first.",
        "parameters": [EQUIPMENT_ID, *HISTORY_QUERY],
        "responses": {
            "200": {"description": "A page; nextCursor is null on the last one",
                    "content": {"application/json": {"schema": HISTORY_PAGE}}},
            "400": answer_schema("A bad limit or cursor; the message says which", 400),
            "404": EQUIPMENT_NOT_FOUND, "500": INTERNAL, "503": OVERLOADED,
        },
    }}


# -- completion without polling (additions: opt-in per request) ---------------------------
WAIT = {
    "name": "wait", "in": "query", "required": False,
    "description": "Long-poll (after Google's WaitOperation): answer as soon as the task is final, "
                   "or after this many seconds with the current answer (best effort: it may come "
                   "early). Seconds, up to 3 decimals; cut to STATUS_MAX_WAIT_SECONDS (25 by "
                   "default). Waiters count against API_MAX_WAITERS (503 past it).",
    "schema": {"type": "string", "pattern": r"^[0-9]{1,6}(\.[0-9]{1,3})?$"},
}
BAD_WAIT = answer_schema("A bad wait; the message says what a wait is", 400)
LAST_EVENT_ID = {
    "name": "Last-Event-ID", "in": "header", "required": False,
    "description": "Resume after this event (the id of the last event received); empty is the "
                   "same as none",
    "schema": {"type": "string", "pattern": r"^[ \t]*(?:[0-9]{1,19}-[0-9]{1,19})?[ \t]*$"},
}
CALLBACK_URL = {
    "type": "string", "format": "uri", "maxLength": 2048,
    "description": "Optional: where the final status is POSTed (a Standard Webhooks signed "
                   "event). https only (http with WEBHOOK_ALLOW_HTTP), a host WEBHOOK_ALLOWED_HOSTS "
                   "allows, no credentials or fragment; never a link-local address, nor a private "
                   "one unless WEBHOOK_ALLOW_PRIVATE. Refused with 400 otherwise.",
}
TASK_EVENT = {
    "type": "object", "required": ["type", "timestamp", "data"],
    "properties": {
        "type": {"type": "string", "enum": ["task.completed", "task.failed", "task.cancelled"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "data": TASK_DETAIL,
    },
}
WEBHOOK_HEADERS = [
    {"name": name, "in": "header", "required": True, "description": description,
     "schema": {"type": "string"}}
    for name, description in (
        ("webhook-id", "msg_ + the task id: the same on every attempt, to deduplicate"),
        ("webhook-timestamp", "The attempt's time, in seconds since the epoch"),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'> with the "
                              "first WEBHOOK_SECRET"),
    )
]


_EVENT_TYPES = ["pending", "running", "attempt", "completed", "failed", "cancelled"]
# OpenAPI before 3.2 has a text/event-stream ``schema`` describe each event: its WHATWG fields,
# ``data`` being one line of JSON (``task_events.TaskEvent.to_json``).
STREAM_EVENT = {
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": _EVENT_TYPES},
        "id": {"type": "string", "pattern": r"^[0-9]{1,19}-[0-9]{1,19}$"},
        "retry": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["taskId", "type", "at"],
            "properties": {
                "taskId": {"type": "string", "format": "uuid"},
                "type": {"type": "string", "enum": _EVENT_TYPES},
                "at": {"type": ["string", "null"], "format": "date-time"},
                "attempt": {"type": ["integer", "null"], "minimum": 1},
                "outcome": {"type": ["string", "null"],
                            "enum": ["success", "not_found", "rejected", "error", None]},
                "status": {"type": "string", "enum": ["completed", "failed", "cancelled"]},
                "attempts": {"type": ["integer", "null"], "minimum": 0},
                "failureReason": FAILURE_REASON,
            },
        }},
    },
}


def _add_completion_notices(document: dict[str, Any], *, webhooks_enabled: bool) -> None:
    """Long-poll on the classic status route, the event stream, and the webhook a create's
    callbackUrl asks for (the field only where webhooks are on: elsewhere it is a 400)."""
    paths = document["paths"]
    status = paths["/api/v1/equipment/cpe/{equipment_id}/task/{task_id}"]["get"]
    status["parameters"].append(WAIT)
    status["responses"]["400"] = BAD_WAIT
    body = paths["/api/v1/equipment/cpe/{equipment_id}"]["post"]["requestBody"]
    if webhooks_enabled:
        body["content"]["application/json"]["schema"]["properties"]["callbackUrl"] = CALLBACK_URL
    task = {"task_id": "$response.body#/taskId"}
    paths["/api/v1/equipment/cpe/{equipment_id}"]["post"]["responses"]["200"]["links"].update({
        "TaskEvents": {"operationId": "taskEvents", "parameters": task},
        # A constant wait: long enough to be a long-poll, short enough for a fuzzer's run.
        "WaitForTask": {"operationId": "taskStatus",
                        "parameters": {"equipment_id": "$request.path.equipment_id", **task,
                                       "query.wait": "1"}},
    })
    paths["/api/v2/tasks/{task_id}/events"] = {"get": {
        "operationId": "taskEvents",
        "description": "The task's events as Server-Sent Events: one per change (pending, running, "
                       "each Service A attempt, the final status) with an id; a keep-alive comment "
                       "on a quiet stream; the stream ends after the final event.",
        "parameters": [TASK_ID, LAST_EVENT_ID],
        "responses": {
            "200": {"description": "The stream (WHATWG HTML event stream)",
                    "content": {"text/event-stream": {"schema": STREAM_EVENT}}},
            "204": {"description": "The task is final and the client has every event: stop"},
            "400": answer_schema("A malformed Last-Event-ID", 400),
            "404": TASK_NOT_FOUND, "500": INTERNAL, "503": OVERLOADED,
        },
    }}
    document["webhooks"] = {"taskFinished": {"post": {
        "description": "Sent to a create's callbackUrl once the task is final, at least once (retried "
                       "with backoff on errors, timeouts, 429 and 5xx; a 410 stops it). Verify the "
                       "signature before trusting it.",
        "parameters": WEBHOOK_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": TASK_EVENT}}},
        "responses": {"200": {"description": "Any 2xx: received"},
                      "410": {"description": "Gone: never send this event again"}},
    }}}


REQUEST_BODY_RULES = (
    "A JSON object (RFC 8259). A key given twice in one object, at any depth, is a 400 naming "
    "it; NaN and Infinity are not numbers. An integer is any integral number, as JSON Schema "
    "has it (81421.0 and 1e3 are the integers 81421 and 1000, queued and forwarded as such); a "
    "number with a fraction is a 400. Bounds (API_MAX_*) are checked before a number is "
    "converted, and a value past one is a 400 naming the field and the bound. Unknown fields "
    "are ignored and not forwarded.")


def provisioning_request(limits: RequestLimits) -> dict[str, Any]:
    """The create's body, with this process's bounds."""
    credential = {"type": "string", "minLength": 1, "maxLength": limits.max_credential_length}
    return {
        "type": "object",
        "required": ["timeoutInSeconds", "parameters"],
        "properties": {
            "timeoutInSeconds": {"type": "integer", "minimum": 1,
                                 "maximum": limits.max_timeout_seconds,
                                 "description": "Passed through to Service A "
                                                "(API_MAX_TIMEOUT_SECONDS at most)"},
            "parameters": {
                "type": "object",
                "required": ["username", "password", "interfaces"],
                "properties": {
                    "username": credential,
                    "password": {**credential, "writeOnly": True},
                    "vlan": {"type": "integer", "minimum": VLAN_RANGE.start,
                             "maximum": VLAN_RANGE.stop - 1},
                    "interfaces": {"type": "array", "minItems": 1,
                                   "maxItems": limits.max_interfaces,
                                   "description": "API_MAX_INTERFACES entries at most, each "
                                                  "up to API_MAX_INTERFACE_NUMBER",
                                   "items": {"type": "integer", "minimum": 1,
                                             "maximum": limits.max_interface_number}},
                },
            },
        },
        "example": {"timeoutInSeconds": 14, "parameters": {
            "username": "admin", "password": "admin", "vlan": 534, "interfaces": [1, 2, 3, 4]}},
    }


PROVISIONING_REQUEST = provisioning_request(DEFAULT_LIMITS)  # with the default bounds


def openapi_document(*, with_auth: bool, limits: RequestLimits = DEFAULT_LIMITS,
                     json_content_type_required: bool = False,
                     webhooks_enabled: bool = False) -> dict[str, Any]:
    """The document for a Service B with these settings (``API_TOKENS`` set, its bounds,
    ``API_REQUIRE_JSON_CONTENT_TYPE``, webhooks on)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Service B: CPE provisioning", "version": "1.0.0",
                 "description": "Create asynchronous provisioning tasks and read their status."},
        "paths": {
            "/api/v1/equipment/cpe/{equipment_id}": {
                "post": {
                    "operationId": "createTask",
                    "parameters": [EQUIPMENT_ID, IDEMPOTENCY_KEY],
                    "requestBody": {"required": True, "description": REQUEST_BODY_RULES,
                                    "content": {"application/json": {
                                        "schema": provisioning_request(limits)}}},
                    "responses": {
                        "200": {"description": "Queued (the broker confirmed the task)",
                                "headers": IDEMPOTENT_REPLAYED,
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["code", "taskId"],
                                    "properties": {"code": {"type": "integer", "const": 200},
                                                   "taskId": {"type": "string", "format": "uuid"}},
                                }}}},
                        "400": INVALID, "404": EQUIPMENT_NOT_FOUND, "413": TOO_LARGE,
                        "409": IDEMPOTENCY_IN_PROGRESS, "422": IDEMPOTENCY_MISMATCH,
                        "500": INTERNAL, "503": OVERLOADED,
                    },
                },
            },
            "/api/v1/equipment/cpe/{equipment_id}/task/{task_id}": {
                "get": {
                    "operationId": "taskStatus",
                    "parameters": [EQUIPMENT_ID, TASK_ID],
                    "responses": {
                        "200": _one_of("Completed (code 200), still running (code 204) or "
                                       "cancelled (code 410, only after a DELETE)",
                                       answer_schema("", 200, contract.COMPLETED),
                                       answer_schema("", 204, contract.STILL_RUNNING),
                                       answer_schema("", contract.CANCELLED_CODE,
                                                     contract.CANCELLED)),
                        "404": _one_of("Equipment or task not found", EQUIPMENT_NOT_FOUND, TASK_NOT_FOUND),
                        "500": INTERNAL, "503": OVERLOADED,
                    },
                },
            },
        },
    }
    _add_cancellation_and_history(document)
    _add_completion_notices(document, webhooks_enabled=webhooks_enabled)
    if json_content_type_required:
        document["paths"]["/api/v1/equipment/cpe/{equipment_id}"]["post"]["responses"][
            "415"] = NOT_JSON
    if with_auth:
        document["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        document["security"] = [{"bearer": []}]
        for path in document["paths"].values():
            for operation in path.values():
                operation["responses"]["401"] = UNAUTHORIZED
    return document
