"""The served OpenAPI document is the contract: fuzzing it finds no 5xx and no off-schema answer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cpe_devkit.client import Client
from cpe_devkit.stack import Stack

STATEFUL_SECONDS = 50  # the stateful run's budget (schemathesis --max-time)
# What "every check" must be told about this contract, each for a documented reason:
# - a create's schema-valid body gets 422 when its Idempotency-Key was used with another body
#   (the generator reuses short keys across examples);
# - a history page's cursor is opaque (AIP-158): any string the server did not make is 400;
# - DELETE cancels a task (AIP-151 CancelOperation), it does not remove it: the task's status
#   stays readable (use_after_free expects a 404 after a DELETE).
STATEFUL_CONFIG = """
[[operations]]
include-operation-id = "createTask"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "422", "5xx"]

[[operations]]
include-operation-id = "equipmentTasks"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "5xx"]
"""
SCHEMATHESIS = shutil.which("st", path=str(Path(os.sys.executable).parent))  # type: ignore[attr-defined]


async def test_the_openapi_document_describes_both_operations(client: Client) -> None:
    async with client.session.get(f"{client.base}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.")
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/api/v1/equipment/cpe/{equipment_id}", "post"),
        ("/api/v1/equipment/cpe/{equipment_id}/task/{task_id}", "get"),
        ("/api/v1/equipment/cpe/{equipment_id}/task/{task_id}", "delete"),
        ("/api/v2/tasks/{task_id}", "get"),
        ("/api/v2/tasks/{task_id}/events", "get"),
        ("/api/v2/equipment/{equipment_id}/tasks", "get"),
    }
    assert set(document["webhooks"]) == {"taskFinished"}


@pytest.mark.timeout(180)
def test_a_property_based_fuzz_run_finds_no_server_error_and_no_off_schema_answer(
    platform: Stack, tmp_path: Path
) -> None:
    assert SCHEMATHESIS, "schemathesis is a dev dependency"
    result = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{platform.api_url}/openapi.json",
            "--tls-verify", str(platform.ca_file),
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance,response_headers_conformance",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "40",
            "--generation-deterministic",
            "--request-timeout", "10",
        ],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.timeout(240)
def test_a_randomized_stateful_run_with_every_check_follows_the_links_and_finds_nothing(
    platform: Stack, tmp_path: Path
) -> None:
    """The stateful phase: chains of calls along the document's links (a create, then its
    status, long-poll, cancel, detail, events and history), with every check, randomized (the
    seed is printed) within a time budget."""
    assert SCHEMATHESIS, "schemathesis is a dev dependency"
    config = tmp_path / "schemathesis.toml"
    config.write_text(STATEFUL_CONFIG)
    result = subprocess.run(
        [
            SCHEMATHESIS, "--config-file", str(config), "run", f"{platform.api_url}/openapi.json",
            "--tls-verify", str(platform.ca_file),
            "--phases", "stateful",
            "--checks", "all", "--exclude-checks", "use_after_free",
            "--max-time", str(STATEFUL_SECONDS),
            "--request-timeout", "10",
            "--generation-database", "none",
        ],
        capture_output=True, text=True, timeout=STATEFUL_SECONDS + 150, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Stateful" in result.stdout


async def test_the_stub_serves_its_own_openapi_document(client: Client, platform: Stack) -> None:
    async with client.session.get(f"{platform.stub_url}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("/api/v1/equipment/cpe/{equipment_id}", "post"),
        ("/admin/behaviour", "get"),
        ("/admin/behaviour", "put"),
    }
