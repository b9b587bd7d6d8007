"""CI smoke run of the Locust scenarios: the real platform (stub delay 0.5 s), Locust headless
for a dozen seconds, and its CSV statistics read as the verdict."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpe_devkit.environment import platform_environment
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.services import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STUB_DELAY_SECONDS = 0.5
FAILING_ID = "FAILING002"
UNKNOWN_ID = "UNKNOWN002"
RUN_SECONDS = 12
API_TOKEN = "smoke-token-3f9a"




@pytest.fixture
def platform(cert_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    environment = platform_environment(
        cert_dir, tag="load", work_dir=tmp_path,
        STUB_DELAY_SECONDS=str(STUB_DELAY_SECONDS), STUB_FAIL_IDS=FAILING_ID,
        STUB_UNKNOWN_IDS=UNKNOWN_ID, WORKER_METRICS_PORT="0", SERVICE_A_ATTEMPTS="2",
        SERVICE_A_BACKOFF_SECONDS="0.05", API_TOKENS=API_TOKEN,
    )
    with throwaway_stack(environment, tmp_path / "logs") as stack:
        yield stack


def run_locust(stack: Stack, reports: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
        "--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{RUN_SECONDS}s",
        "--stop-timeout", "15", "--only-summary",
        "--host", stack.api_url, "--ca-file", str(stack.ca_file), "--stub-url", stack.stub_url,
        "--api-token", API_TOKEN,
        "--expected-seconds", str(STUB_DELAY_SECONDS), "--task-deadline", "10",
        "--fail-ids", FAILING_ID, "--unknown-ids", UNKNOWN_ID, "--service-a-attempts", "2",
        "--weight-faults", "3",  # a few fault users, so every kind of fault runs in a short run
        # Faults switched on and off through the stub's admin endpoint in the middle of the run.
        "--stub-schedule", "3 failureRatio=0.5; 7 failureRatio=0",
        "--csv", str(reports / "smoke"), "--html", str(reports / "smoke.html"),
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=RUN_SECONDS + 60,
                          check=False)


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def test_a_short_locust_run_finishes_every_task_with_only_expected_failures(
    platform: Stack, tmp_path: Path
) -> None:
    result = run_locust(platform, tmp_path)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, output

    stats = read_stats(tmp_path / "smoke_stats.csv")
    e2e = stats["task e2e"]
    assert int(e2e["Request Count"]) > 0, output
    assert int(e2e["Failure Count"]) == 0, output
    assert "task e2e interrupted" not in stats, output
    assert int(stats["Aggregated"]["Failure Count"]) == 0, output
    # Every scenario ran and got the answers the contract promises.
    for name in ("task e2e fail-id", "task e2e unknown-id", "task e2e injected failure",
                 "PUT stub /admin/behaviour"):
        assert int(stats[name]["Request Count"]) > 0, f"{name}: {output}"
    assert any(name.startswith("invalid: ") for name in stats), output
    assert (tmp_path / "smoke.html").stat().st_size > 0
