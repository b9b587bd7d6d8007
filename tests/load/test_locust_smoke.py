"""CI smoke run of the Locust scenarios: the real platform (stub delay 0.5 s), Locust headless
for a dozen seconds, and its CSV statistics read as the verdict."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpe_devkit.environment import platform_environment
from cpe_devkit.stack import Stack, throwaway_stack
from cpe_devkit.webhook_receiver import new_secret
from tests.support.services import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STUB_DELAY_SECONDS = 0.5
FAILING_ID = "FAILING002"
UNKNOWN_ID = "UNKNOWN002"
RUN_SECONDS = 12
API_TOKEN = "smoke-token-3f9a"
# The classic scenarios, with a few fault users so that every kind of fault runs in a short run,
# and faults switched on and off through the stub's admin endpoint in the middle of the run.
CLASSIC_SCENARIOS = ("--weight-faults", "3", "--stub-schedule", "3 failureRatio=0.5; 7 failureRatio=0")
# Only the opt-in scenarios of the operator additions: idempotent replays and cancellations.
OPERATOR_SCENARIOS = ("--weight-provision", "0", "--weight-status", "0", "--weight-invalid", "0",
                      "--weight-faults", "0", "--weight-idempotent", "5", "--weight-cancel", "5")
# Only the opt-in scenarios of completion notices: long-polls, and webhooks to Locust's receiver.
NOTICE_SCENARIOS = ("--weight-provision", "0", "--weight-status", "0", "--weight-invalid", "0",
                    "--weight-faults", "0", "--weight-long-poll", "5", "--weight-webhook", "5")
WEBHOOK_SECRET = new_secret()


@pytest.fixture
def platform(cert_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    environment = platform_environment(
        cert_dir, tag="load", work_dir=tmp_path,
        STUB_DELAY_SECONDS=str(STUB_DELAY_SECONDS), STUB_FAIL_IDS=FAILING_ID,
        STUB_UNKNOWN_IDS=UNKNOWN_ID, WORKER_METRICS_PORT="0", SERVICE_A_ATTEMPTS="2",
        SERVICE_A_BACKOFF_SECONDS="0.05", API_TOKENS=API_TOKEN,
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1", WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_SECRET=WEBHOOK_SECRET,
        WEBHOOK_CA_FILE=str(cert_dir / "ca.pem"),
    )
    with throwaway_stack(environment, tmp_path / "logs") as stack:
        yield stack


def run_locust(stack: Stack, reports: Path, scenarios: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
        "--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{RUN_SECONDS}s",
        "--stop-timeout", "15", "--only-summary",
        "--host", stack.api_url, "--ca-file", str(stack.ca_file), "--stub-url", stack.stub_url,
        "--api-token", API_TOKEN,
        "--expected-seconds", str(STUB_DELAY_SECONDS), "--task-deadline", "10",
        "--fail-ids", FAILING_ID, "--unknown-ids", UNKNOWN_ID, "--service-a-attempts", "2",
        "--webhook-secret", WEBHOOK_SECRET,
        *scenarios,
        "--csv", str(reports / "smoke"), "--html", str(reports / "smoke.html"),
    ]
    # The webhook scenario's receiver comes from the development kit.
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO / "devkit"), os.environ.get("PYTHONPATH", "")]))}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=RUN_SECONDS + 60,
                          check=False, env=environment)


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def finished_run(stack: Stack, reports: Path, scenarios: tuple[str, ...]
                 ) -> tuple[dict[str, dict[str, str]], str]:
    """A Locust run that exited cleanly with no failed request: its statistics by entry name,
    and the tail of its output for the assertion messages."""
    result = run_locust(stack, reports, scenarios)
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    stats = read_stats(reports / "smoke_stats.csv")
    assert int(stats["Aggregated"]["Failure Count"]) == 0, output
    return stats, output


def test_a_short_locust_run_finishes_every_task_with_only_expected_failures(
    platform: Stack, tmp_path: Path
) -> None:
    stats, output = finished_run(platform, tmp_path, CLASSIC_SCENARIOS)
    e2e = stats["task e2e"]
    assert int(e2e["Request Count"]) > 0, output
    assert int(e2e["Failure Count"]) == 0, output
    assert "task e2e interrupted" not in stats, output
    # Every scenario ran and got the answers the contract promises.
    for name in ("task e2e fail-id", "task e2e unknown-id", "task e2e injected failure",
                 "PUT stub /admin/behaviour"):
        assert int(stats[name]["Request Count"]) > 0, f"{name}: {output}"
    assert any(name.startswith("invalid: ") for name in stats), output
    assert (tmp_path / "smoke.html").stat().st_size > 0


def test_the_opt_in_scenarios_replay_every_create_to_its_task_and_cancel_in_the_contract(
    platform: Stack, tmp_path: Path
) -> None:
    stats, output = finished_run(platform, tmp_path, OPERATOR_SCENARIOS)
    for name in ("task e2e idempotent", "POST /api/v1/equipment/cpe/[id] (Idempotency-Key replay)",
                 "DELETE /api/v1/equipment/cpe/[id]/task/[task]"):
        assert int(stats[name]["Request Count"]) > 0, f"{name}: {output}"
    cancelled = sum(int(stats[name]["Request Count"]) for name in ("task e2e cancelled", "task e2e cancel too late")
                    if name in stats)
    assert cancelled > 0, output


def test_the_notice_scenarios_learn_every_end_from_a_long_poll_or_a_verified_webhook(
    platform: Stack, tmp_path: Path
) -> None:
    stats, output = finished_run(platform, tmp_path, NOTICE_SCENARIOS)
    for name in ("task e2e long-poll", "GET /api/v1/equipment/cpe/[id]/task/[task]?wait=[seconds]",
                 "task e2e webhook", "webhook delivery"):
        assert int(stats[name]["Request Count"]) > 0, f"{name}: {output}"
    # Each webhook's arrival, not the next poll, ends its task: well under a poll interval.
    assert float(stats["webhook delivery"]["Median Response Time"]) < 1000, output
