"""The real platform as processes over HTTPS (stub with a short delay, Service B, worker pool),
shared by the session, and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cpe_devkit.client import Client, client_session
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import e2e_environment


@pytest.fixture(scope="session")
def platform(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with throwaway_stack(e2e_environment(cert_dir), tmp_path_factory.mktemp("logs")) as stack:
        yield stack


@pytest.fixture
async def client(platform: Stack) -> AsyncIterator[Client]:
    async with client_session(platform.ca_file) as session:
        yield Client(session, platform.api_url)
