"""The HTTPS client of Service A: one pooled aiohttp session per worker process."""

from __future__ import annotations

import aiohttp
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from ..errors import ServiceAFinalError, ServiceATransientError
from ..models import ProvisioningRequest
from ..settings import WorkerSettings
from ..tls import client_context

TRANSIENT_STATUSES = frozenset({408, 425, 429})


class ServiceAClient:
    """``configure()`` makes one attempt and says how it went by raising or returning.

    ``traced``: a CLIENT span per call, its context injected so the stub continues the trace.
    Off when the process does not export traces: the hooks cost ~4 % of a worker's CPU even
    with a no-op tracer (py-spy, loadtest/RESULTS.md)."""

    def __init__(self, settings: WorkerSettings, *, traced: bool) -> None:
        self._settings = settings
        self._traced = traced
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ServiceAClient:
        connector = aiohttp.TCPConnector(
            ssl=client_context(self._settings.tls.ca_file),
            limit=self._settings.service_a_max_connections,
            keepalive_timeout=75,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._settings.service_a_timeout_seconds),
            raise_for_status=False,
            trace_configs=[create_trace_config()] if self._traced else None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def configure(self, equipment_id: str, request: ProvisioningRequest) -> None:
        if self._session is None:
            raise RuntimeError("ServiceAClient used outside 'async with'")
        url = f"{self._settings.service_a_url}/api/v1/equipment/cpe/{equipment_id}"
        try:
            async with self._session.post(url, json=request.to_wire()) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ServiceATransientError(f"service A unreachable: {type(error).__name__}") from error
        if status == 200:
            return
        if status == 404:
            raise ServiceAFinalError("service A: equipment not found", equipment_unknown=True)
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise ServiceATransientError(f"service A answered {status}")
        raise ServiceAFinalError(f"service A answered {status}")
