"""Service B: the REST API that creates provisioning tasks and answers their status."""

from .app import create_app

__all__ = ["create_app"]
