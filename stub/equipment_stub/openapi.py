"""The stub's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Its own, written from the README's "Service A stub" table: the stub stands in for an external
system and describes what it answers, not what Service B answers. That its request schema is
the one Service B documents is checked by the contract test, not assumed by importing it.
"""

from __future__ import annotations

from typing import Any

from . import answers
from .limits import EQUIPMENT_ID, EQUIPMENT_ID_SHAPE, MAX_INTEGER_DIGITS, MAX_LISTED_IDS, MAX_SECONDS
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
    "description": f"{EQUIPMENT_ID_SHAPE}; anything else is 'equipment not found'.",
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
    "400": _answer("Invalid JSON or body; the message says which field and why. Bodies are read "
                   "as strict JSON: no NaN or Infinity, no duplicate names, no integer of more "
                   f"than {MAX_INTEGER_DIGITS} digits", 400),
    "404": _answer("Bad id, or an id the stub does not know (at once)", 404, answers.EQUIPMENT_NOT_FOUND),
    "413": _answer("The body is longer than STUB_MAX_BODY_BYTES (1 MiB by default)", 413),
    "500": _answer("Failed, after the delay (injected fault)", 500, answers.INTERNAL_ERROR),
}
SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
EQUIPMENT_IDS = {
    "type": "array", "maxItems": MAX_LISTED_IDS,
    "items": {"type": "string", "pattern": f"^{EQUIPMENT_ID.pattern}$"},
}
BEHAVIOUR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "delaySeconds": SECONDS,
        "jitterSeconds": {**SECONDS, "description": f"One call's delay, delaySeconds ± up to this, "
                                                    f"stays between 0 and {MAX_SECONDS}"},
        "failureRatio": {"type": "number", "minimum": 0, "maximum": 1},
        "failIds": EQUIPMENT_IDS,
        "unknownIds": EQUIPMENT_IDS,
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
                    "responses": {"200": BEHAVIOUR_ANSWER, "400": CONFIGURATION_ANSWERS["400"],
                                  "413": CONFIGURATION_ANSWERS["413"]},
                },
            },
        },
    }
