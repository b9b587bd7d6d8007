"""The stub's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Its own, written from the README's "Service A stub" table: the stub stands in for an external
system and describes what it answers, not what Service B answers. That its request schema is
the one Service B documents is checked by the contract test, not assumed by importing it.
"""

from __future__ import annotations

from typing import Any

from . import answers
from .request_body import HIGHEST_VLAN

JSON = "application/json"
POSITIVE_INTEGER = {"type": "integer", "minimum": 1}
NON_EMPTY_TEXT = {"type": "string", "minLength": 1}


def _answer(description: str, code: int, message: str | None = None) -> dict[str, Any]:
    """An answer ``{"code": code, "message": ...}``: that message, or any when ``None``."""
    message_schema = NON_EMPTY_TEXT if message is None else {"type": "string", "const": message}
    body = {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "integer", "const": code}, "message": message_schema}}
    return {"description": description, "content": {JSON: {"schema": body}}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


EQUIPMENT_ID_PARAMETER = {
    "name": "equipment_id", "in": "path", "required": True, "schema": {"type": "string"},
    "description": "Letters and digits, at least six; anything else is 'equipment not found'.",
}
CONFIGURATION_REQUEST = {
    "type": "object",
    "required": ["timeoutInSeconds", "parameters"],
    "properties": {"timeoutInSeconds": POSITIVE_INTEGER, "parameters": {
        "type": "object",
        "required": ["username", "password", "interfaces"],
        "properties": {
            "username": NON_EMPTY_TEXT,
            "password": {**NON_EMPTY_TEXT, "writeOnly": True},
            "vlan": {"type": "integer", "minimum": 1, "maximum": HIGHEST_VLAN},
            "interfaces": {"type": "array", "minItems": 1, "items": POSITIVE_INTEGER},
        },
    }},
}
CONFIGURATION_ANSWERS = {
    "200": _answer("Configured, after the delay", 200, answers.SUCCESS),
    "400": _answer("Invalid JSON or body; the message says which field and why", 400),
    "404": _answer("Bad id, or an id the stub does not know (at once)", 404, answers.EQUIPMENT_NOT_FOUND),
    "500": _answer("Failed, after the delay (injected fault)", 500, answers.INTERNAL_ERROR),
}
BEHAVIOUR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "delaySeconds": {"type": "number", "minimum": 0},
        "jitterSeconds": {"type": "number", "minimum": 0},
        "failureRatio": {"type": "number", "minimum": 0, "maximum": 1},
        "failIds": {"type": "array", "items": {"type": "string"}},
        "unknownIds": {"type": "array", "items": {"type": "string"}},
    },
}
BEHAVIOUR_ANSWER = {"description": "The whole current behaviour", "content": {JSON: {"schema": BEHAVIOUR}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Service A stub: equipment configuration", "version": "1.0.0"},
        "paths": {
            "/api/v1/equipment/cpe/{equipment_id}": {"post": {
                "operationId": "configureEquipment",
                "parameters": [EQUIPMENT_ID_PARAMETER],
                "requestBody": _json_body(CONFIGURATION_REQUEST),
                "responses": CONFIGURATION_ANSWERS,
            }},
            "/admin/behaviour": {
                "get": {"operationId": "showBehaviour", "responses": {"200": BEHAVIOUR_ANSWER}},
                "put": {
                    "operationId": "changeBehaviour",
                    "requestBody": _json_body(BEHAVIOUR),
                    "responses": {"200": BEHAVIOUR_ANSWER, "400": CONFIGURATION_ANSWERS["400"]},
                },
            },
        },
    }
