"""Fixtures of the observability tests: the Prometheus tools, installed when missing."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.services import REPO

from .processes import PrometheusTools

ENSURE_SCRIPT = REPO / "scripts" / "ensure-prometheus.sh"


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    """promtool, prometheus and the Redis exporter, installed through apt when missing.

    `task test` runs scripts/ensure-prometheus.sh before pytest; this covers a bare `pytest`.
    The script never fails: where it cannot install, the tests that need a tool skip.
    """
    tools = PrometheusTools.on_path()
    if tools.missing:
        subprocess.run(["bash", str(ENSURE_SCRIPT)], check=False, timeout=600)
        tools = PrometheusTools.on_path()
    return tools
