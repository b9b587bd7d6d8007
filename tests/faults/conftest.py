"""Fault injection against the real processes.

The machine's own Redis and RabbitMQ are never touched: the session starts a RabbitMQ node
and a redis-server of its own (``rabbit_node``, ``redis_server``), which a test may stop and
start again; each test's platform gets its own queue names and key prefix on them. Every test
keeps a ``ledger`` of the tasks it sent; its figures (sent, accepted, refused, completed,
failed, lost, and what the fault adds) are written to ``reports/faults/<test>.json`` and shown
at the end of the run.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cpe_devkit.rabbit_node import RabbitNode
from cpe_devkit.redis_server import RedisServer
from tests.support.services import REPO

from .harness import FaultPlatform, PlatformFactory, launch_platform
from .ledger import Ledger

REPORTS = REPO / "reports" / "faults"
MAIN_FIGURES = ("outcome", "sent", "accepted", "refused_500", "completed", "failed", "lost")
_FIGURES: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture(scope="session")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the tests' own: quorum queues, persistent messages, restartable."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
        yield node
    finally:
        node.close()
        shutil.rmtree(node.directory / "mnesia", ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the tests' own, with an append-only file fsynced on every write."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(server.directory / "appendonlydir", ignore_errors=True)


@pytest.fixture
def servers_up(rabbit_node: RabbitNode, redis_server: RedisServer) -> tuple[RabbitNode, RedisServer]:
    """Both servers running at the start of a test, whatever an earlier failure left behind."""
    if not rabbit_node.running:
        rabbit_node.stop()
        rabbit_node.start()
    if not redis_server.running:
        redis_server.stop()
        redis_server.start()
    return rabbit_node, redis_server


@pytest.fixture
async def start_platform(cert_dir: Path, servers_up: tuple[RabbitNode, RedisServer],
                         tmp_path: Path) -> AsyncIterator[PlatformFactory]:
    """Start the stub, Service B and the worker pool on our servers; ``start_platform(
    STUB_DELAY_SECONDS="2", ...)`` overrides variables, ``proxied=True`` puts a fault proxy on
    each link (``harness.Network``). Stopped and cleaned up after the test."""
    rabbit, redis = servers_up
    started: list[FaultPlatform] = []

    async def start(*, proxied: bool = False, **overrides: str) -> FaultPlatform:
        platform = await launch_platform(cert_dir, rabbit, redis, tmp_path, overrides,
                                         proxied=proxied)
        started.append(platform)
        return platform

    yield start
    for platform in started:
        await platform.close()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """The test's tasks and their fate; its figures are written whatever the outcome."""
    book = Ledger(request.node.name)
    yield book
    outcome = call_outcome(getattr(request.node, "fault_call_report", None))
    book.write(REPORTS, outcome)
    _FIGURES.append((request.node.name, {"outcome": outcome, **book.figures()}))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The whole network fault matrix runs only when asked for (``-m network_matrix``)."""
    if "network_matrix" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the whole network matrix: run with -m network_matrix")
    for item in items:
        if item.get_closest_marker("network_matrix") is not None:
            item.add_marker(skip)


def call_outcome(report: pytest.TestReport | None) -> str:
    if report is None:
        return "error"
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    return report.outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.fault_call_report = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault figures (also in reports/faults/)")
    for name, figures in _FIGURES:
        main = " ".join(f"{key}={figures[key]}" for key in MAIN_FIGURES)
        extra = {k: v for k, v in figures.items() if k not in MAIN_FIGURES and k != "unexpected"}
        terminalreporter.write_line(f"{name}: {main}")
        if figures.get("unexpected"):
            terminalreporter.write_line(f"    unexpected answers: {figures['unexpected']}")
        if extra:
            terminalreporter.write_line(f"    {extra}")
