"""Service A stub: stands in for the external configuration system.

It answers ``POST /api/v1/equipment/cpe/{id}`` after a configurable delay, with configurable
faults, and sleeps asynchronously so that one process holds thousands of calls at once.
It has its own answers, request checks, metrics and OpenAPI document, and imports nothing
of Service B's API or telemetry: it stands in for an external system (see ``answers``).
"""

from .app import create_app

__all__ = ["create_app"]
