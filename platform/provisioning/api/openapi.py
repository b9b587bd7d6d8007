"""The OpenAPI 3.1 document of Service B, served at ``GET /openapi.json``.

Written by hand from the contract (README, "The API contract"): it is the contract, so it is
kept next to the code that answers it and checked against the real service by the tests.
"""

from __future__ import annotations

from typing import Any

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


EQUIPMENT_ID = {
    "name": "equipment_id", "in": "path", "required": True,
    "description": "Letters and digits, at least six; anything else is 'equipment not found'.",
    "schema": {"type": "string"},
}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The task's UUID; anything else is 'task not found'."}

EQUIPMENT_NOT_FOUND = answer_schema("Bad id", 404, "The requested equipment is not found")
TASK_NOT_FOUND = answer_schema("Unknown task", 404, "The requested task is not found")
INTERNAL = answer_schema("Not stored or not queued / provisioning failed", 500, contract.INTERNAL_ERROR)
INVALID = answer_schema("Invalid JSON or body; the message says which field and why", 400)
TOO_LARGE = answer_schema("Body larger than API_MAX_BODY_BYTES", 413)
OVERLOADED = {**answer_schema("At the in-flight limit; retry after Retry-After seconds", 503,
                        contract.OVERLOADED),
              "headers": {"Retry-After": {"schema": {"type": "string"}}}}
UNAUTHORIZED = answer_schema("Missing or wrong bearer token (only when API_TOKENS is set)", 401,
                       "Unauthorized")

PROVISIONING_REQUEST = {
    "type": "object",
    "required": ["timeoutInSeconds", "parameters"],
    "properties": {
        "timeoutInSeconds": {"type": "integer", "minimum": 1},
        "parameters": {
            "type": "object",
            "required": ["username", "password", "interfaces"],
            "properties": {
                "username": {"type": "string", "minLength": 1},
                "password": {"type": "string", "minLength": 1, "writeOnly": True},
                "vlan": {"type": "integer", "minimum": 1, "maximum": 4094},
                "interfaces": {"type": "array", "minItems": 1,
                               "items": {"type": "integer", "minimum": 1}},
            },
        },
    },
    "example": {"timeoutInSeconds": 14, "parameters": {
        "username": "admin", "password": "admin", "vlan": 534, "interfaces": [1, 2, 3, 4]}},
}


def openapi_document(*, with_auth: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Service B: CPE provisioning", "version": "1.0.0",
                 "description": "Create asynchronous provisioning tasks and read their status."},
        "paths": {
            "/api/v1/equipment/cpe/{equipment_id}": {
                "post": {
                    "operationId": "createTask",
                    "parameters": [EQUIPMENT_ID],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": PROVISIONING_REQUEST}}},
                    "responses": {
                        "200": {"description": "Queued (the broker confirmed the task)",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["code", "taskId"],
                                    "properties": {"code": {"type": "integer", "const": 200},
                                                   "taskId": {"type": "string", "format": "uuid"}},
                                }}}},
                        "400": INVALID, "404": EQUIPMENT_NOT_FOUND, "413": TOO_LARGE,
                        "500": INTERNAL, "503": OVERLOADED,
                    },
                },
            },
            "/api/v1/equipment/cpe/{equipment_id}/task/{task_id}": {
                "get": {
                    "operationId": "taskStatus",
                    "parameters": [EQUIPMENT_ID, TASK_ID],
                    "responses": {
                        "200": _one_of("Completed (code 200) or still running (code 204)",
                                       answer_schema("", 200, contract.COMPLETED),
                                       answer_schema("", 204, contract.STILL_RUNNING)),
                        "404": _one_of("Equipment or task not found", EQUIPMENT_NOT_FOUND, TASK_NOT_FOUND),
                        "500": INTERNAL, "503": OVERLOADED,
                    },
                },
            },
        },
    }
    if with_auth:
        document["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        document["security"] = [{"bearer": []}]
        for path in document["paths"].values():
            for operation in path.values():
                operation["responses"]["401"] = UNAUTHORIZED
    return document
