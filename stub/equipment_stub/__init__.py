"""Service A stub: stands in for the external configuration system.

It answers ``POST /api/v1/equipment/cpe/{id}`` after a configurable delay, with configurable
faults, and sleeps asynchronously so that one process holds thousands of calls at once.
It shares the contract's validation and error bodies with ``provisioning``.
"""

from .app import create_app

__all__ = ["create_app"]
