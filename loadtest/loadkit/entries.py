"""Entries of Locust's statistics that are not its HTTP client's own requests: a whole task,
a call to the stub's admin endpoint. Both go through Locust's ``request`` event, so they
appear in the same tables, CSV and charts as the requests."""

from __future__ import annotations

import time
from typing import Any


def report_entry(events: Any, request_type: str, name: str, started: float, *,
                 error: Exception | None = None, length: int = 0, ended: float | None = None) -> None:
    """Report one entry that began at ``started`` (``time.monotonic()``) and ends at ``ended``
    (now unless told, e.g. when a webhook arrived); ``error`` None is a success. (``events``
    is Locust's untyped ``Events``.)"""
    elapsed_ms = ((time.monotonic() if ended is None else ended) - started) * 1000
    events.request.fire(request_type=request_type, name=name, response_time=elapsed_ms,
                        response_length=length, exception=error, context={})
