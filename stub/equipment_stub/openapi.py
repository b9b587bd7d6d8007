"""The stub's OpenAPI 3.1 document, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from provisioning.api.openapi import (
    EQUIPMENT_ID,
    EQUIPMENT_NOT_FOUND,
    INTERNAL,
    INVALID,
    PROVISIONING_REQUEST,
    answer_schema,
)

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
BEHAVIOUR_ANSWER = {"description": "The whole current behaviour",
                    "content": {"application/json": {"schema": BEHAVIOUR}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Service A stub: equipment configuration", "version": "1.0.0"},
        "paths": {
            "/api/v1/equipment/cpe/{equipment_id}": {"post": {
                "operationId": "configureEquipment",
                "parameters": [EQUIPMENT_ID],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": PROVISIONING_REQUEST}}},
                "responses": {
                    "200": answer_schema("Configured, after the delay", 200, "success"),
                    "400": INVALID, "404": EQUIPMENT_NOT_FOUND, "500": INTERNAL,
                },
            }},
            "/admin/behaviour": {
                "get": {"operationId": "showBehaviour", "responses": {"200": BEHAVIOUR_ANSWER}},
                "put": {
                    "operationId": "changeBehaviour",
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": BEHAVIOUR}}},
                    "responses": {"200": BEHAVIOUR_ANSWER, "400": INVALID},
                },
            },
        },
    }
