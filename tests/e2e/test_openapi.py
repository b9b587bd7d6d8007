"""The served OpenAPI document is the contract: fuzzing it finds no 5xx and no off-schema answer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cpe_devkit.client import Client
from cpe_devkit.stack import Stack

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
            "--max-examples", "40",
            "--generation-deterministic",
            "--request-timeout", "10",
        ],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


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
