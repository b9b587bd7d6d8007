"""Service A's contract, from both sides: the worker's client against the real stub over HTTPS.

The stub gives its own answers (``equipment_stub.answers``, ``equipment_stub.request_body``) and
the worker's ``ServiceAClient`` reads them; neither imports the other, so this is what holds
them together. Every answer the stub can give is read the way the README says (200 success;
404 a final "equipment not found"; 400 a final rejection; 500 transient, worth a retry), and
every body the client sends for a request Service B accepted is one the stub accepts.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cpe_devkit.client import client_session, create_path, request_body
from cpe_devkit.environment import platform_environment
from cpe_devkit.stack import Stack, running_stack
from equipment_stub.openapi import CONFIGURATION_REQUEST
from provisioning.api.openapi import PROVISIONING_REQUEST
from provisioning.errors import ServiceAFinalError, ServiceATransientError
from provisioning.models import DeviceParameters, ProvisioningRequest, parse_provisioning_request
from provisioning.settings import WorkerSettings
from provisioning.worker.service_a import ServiceAClient

KNOWN_ID = "CONTRACT01"
FAILING_ID = "FAILING001"
UNKNOWN_ID = "UNKNOWN001"
MALFORMED_ID = "ab-1"


def accepted_by_service_b(**changes: Any) -> ProvisioningRequest:
    """A request as Service B hands it to the worker: the README's body, changed, then parsed."""
    body = request_body()
    body["parameters"].update(changes)
    return parse_provisioning_request(body)


def unchecked(timeout_in_seconds: int = 14, **changes: Any) -> ProvisioningRequest:
    """A request Service B would have refused: what the worker would send if the two drifted."""
    parameters = {"username": "admin", "password": "secret", "interfaces": (1,), "vlan": None, **changes}
    return ProvisioningRequest(timeout_in_seconds, DeviceParameters(**parameters))


@pytest.fixture(scope="module")
def stub(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("service-a-contract")
    environment = platform_environment(
        cert_dir, tag="service-a-contract", work_dir=work,
        STUB_DELAY_SECONDS="0.05", STUB_FAIL_IDS=FAILING_ID, STUB_UNKNOWN_IDS=UNKNOWN_ID,
        STUB_METRICS_PORT="0", OTEL_SDK_DISABLED="true",
    )
    with running_stack(environment, work, only=("stub",)) as stack:
        yield stack


@pytest.fixture
async def service_a(stub: Stack) -> AsyncIterator[ServiceAClient]:
    settings = WorkerSettings.from_env({**stub.environment, "SERVICE_A_TIMEOUT_SECONDS": "10"})
    async with ServiceAClient(settings, traced=False) as client:
        yield client


# -- what the client sends is what the stub accepts ----------------------------------------------

@pytest.mark.parametrize("request_", [
    accepted_by_service_b(),
    accepted_by_service_b(vlan=None),
    accepted_by_service_b(vlan=1, interfaces=[1]),
    accepted_by_service_b(vlan=4094, interfaces=list(range(1, 49))),
    accepted_by_service_b(comment="unknown fields are ignored and not forwarded"),
    accepted_by_service_b(interfaces=[2_147_483_647] * 1024,
                          username="u" * 256, password="p" * 256),
], ids=["readme-example", "no-vlan", "lowest-vlan-one-interface", "highest-vlan-48-interfaces",
        "unknown-field", "every-default-bound-at-its-maximum"])
async def test_every_request_service_b_accepts_is_configured_by_the_stub(
    service_a: ServiceAClient, request_: ProvisioningRequest
) -> None:
    await service_a.configure(KNOWN_ID, request_)  # 200: returns, raises nothing


def test_the_stub_documents_the_request_body_that_service_b_documents() -> None:
    """The same fields, types and rules. Service B's upper bounds (``API_MAX_*``) are its own
    settings: the stub, as a Service A would, takes any body a Service B sends, however they
    are set (the stub's own, larger limits are its tests')."""
    service_b = copy.deepcopy(PROVISIONING_REQUEST)
    service_b.pop("example")
    timeout = service_b["properties"]["timeoutInSeconds"]
    del timeout["maximum"], timeout["description"]
    parameters = service_b["properties"]["parameters"]["properties"]
    for name in ("username", "password"):
        del parameters[name]["maxLength"]
    interfaces = parameters["interfaces"]
    del interfaces["maxItems"], interfaces["description"], interfaces["items"]["maximum"]
    assert CONFIGURATION_REQUEST == service_b


# -- every answer the stub gives, as the client reads it -----------------------------------------

@pytest.mark.parametrize("equipment_id", [UNKNOWN_ID, MALFORMED_ID])
async def test_an_unknown_or_malformed_equipment_is_a_final_equipment_not_found(
    service_a: ServiceAClient, equipment_id: str
) -> None:
    with pytest.raises(ServiceAFinalError) as raised:
        await service_a.configure(equipment_id, accepted_by_service_b())
    assert raised.value.equipment_unknown


@pytest.mark.parametrize("request_", [
    unchecked(timeout_in_seconds=0),
    unchecked(username=""),
    unchecked(vlan=4095),
    unchecked(interfaces=()),
    unchecked(interfaces=(1, -2)),
], ids=["zero-timeout", "empty-username", "vlan-past-4094", "no-interface", "negative-interface"])
async def test_a_body_the_stub_refuses_is_a_final_rejection_not_an_unknown_equipment(
    service_a: ServiceAClient, request_: ProvisioningRequest
) -> None:
    with pytest.raises(ServiceAFinalError) as raised:
        await service_a.configure(KNOWN_ID, request_)
    assert not raised.value.equipment_unknown
    assert "400" in raised.value.reason


async def test_a_failure_after_the_delay_is_transient(service_a: ServiceAClient) -> None:
    with pytest.raises(ServiceATransientError) as raised:
        await service_a.configure(FAILING_ID, accepted_by_service_b())
    assert "500" in raised.value.reason


# -- the stub's answers are the README's --------------------------------------------------------

@pytest.mark.parametrize(("equipment_id", "body", "status", "answer"), [
    (KNOWN_ID, request_body(), 200, {"code": 200, "message": "success"}),
    (UNKNOWN_ID, request_body(), 404, {"code": 404, "message": "The requested equipment is not found"}),
    (MALFORMED_ID, request_body(), 404, {"code": 404, "message": "The requested equipment is not found"}),
    (FAILING_ID, request_body(), 500, {"code": 500, "message": "Internal provisioning exception"}),
    (KNOWN_ID, request_body(interfaces=(1, 0)), 400,
     {"code": 400, "message": "parameters.interfaces must be a non-empty list of positive integers"}),
    (KNOWN_ID, "not a JSON object", 400, {"code": 400, "message": "the body must be a JSON object"}),
], ids=["success", "unknown", "malformed-id", "failure", "invalid-field", "not-an-object"])
async def test_the_stub_answers_with_the_readme_bodies(
    stub: Stack, equipment_id: str, body: object, status: int, answer: dict[str, Any]
) -> None:
    async with client_session(stub.ca_file) as session, session.post(
        f"{stub.stub_url}{create_path(equipment_id)}", json=body
    ) as response:
        assert (response.status, await response.json()) == (status, answer)


async def test_a_body_that_is_not_json_is_refused_saying_so(stub: Stack) -> None:
    async with client_session(stub.ca_file) as session, session.post(
        f"{stub.stub_url}{create_path(KNOWN_ID)}", data=b"{not json"
    ) as response:
        assert response.status == 400
        answer = await response.json()
    assert answer["code"] == 400
    assert answer["message"].startswith("the body is not valid JSON")
