"""The real platform as processes over HTTPS (stub with a short delay, Service B, worker pool),
shared by the session, and a client of it; an OTLP receiver and a platform that exports its
traces to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from cpe_devkit.ports import free_port
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.otlp import OtlpReceiver
from tests.support.platforms import e2e_environment
from tests.support.task_routes import client_fixture


@pytest.fixture(scope="session")
def platform(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with throwaway_stack(e2e_environment(cert_dir), tmp_path_factory.mktemp("logs")) as stack:
        yield stack


client = client_fixture("platform")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[OtlpReceiver, int]]:
    otlp = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", otlp.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield otlp, port
    await runner.cleanup()


@pytest.fixture
def traced_platform(
    receiver: tuple[OtlpReceiver, int], cert_dir: Path, tmp_path: Path
) -> Iterator[Stack]:
    environment = e2e_environment(cert_dir)
    environment.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    with throwaway_stack(environment, tmp_path) as stack:
        yield stack
