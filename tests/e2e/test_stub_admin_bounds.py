"""The stub's bounds over real HTTPS against a real stub process: its admin route refuses
non-finite, huge and too many values and too long bodies with a precise 400 or 413 and changes
nothing (neither its answers nor the behaviour file its processes share); its main route reads
bodies as strict JSON and bounds ids; what the worker sends for the largest body Service B
accepts still fits; and no value from a request becomes a label of the stub's own metrics."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cpe_devkit.client import client_session, create_path, request_body
from cpe_devkit.environment import platform_environment
from cpe_devkit.probes import scrape
from cpe_devkit.stack import Stack, running_stack
from equipment_stub import strict_json
from equipment_stub.limits import DEFAULT_MAX_BODY_BYTES, EQUIPMENT_ID_MAX_LENGTH, MAX_LISTED_IDS
from equipment_stub.metrics import ANSWER_KINDS
from provisioning.models import EQUIPMENT_ID_MAX_LENGTH as SERVICE_B_ID_MAX_LENGTH
from provisioning.models import parse_provisioning_request
from provisioning.settings import ApiSettings, WorkerSettings
from provisioning.worker.service_a import ServiceAClient

KNOWN_ID = "BOUNDS0001"
# Never a valid value anywhere: if it shows up in a metric label, a request put it there.
MARKER = "zz" + uuid.uuid4().hex
INITIAL = {"delaySeconds": 0.05, "jitterSeconds": 0.0, "failureRatio": 0.0, "failIds": [], "unknownIds": []}
OUT_OF_RANGE = {"code": 400, "message": "delaySeconds must be a number from 0 to 3600"}
TOO_LARGE = {"code": 413, "message": "Request body exceeds the size limit"}
ROUTES = {"/api/v1/equipment/cpe/<equipment_id>", "/admin/behaviour", "/health", "/openapi.json",
          "unmatched"}


def refusal(message: str) -> dict[str, Any]:
    return {"code": 400, "message": message}


def not_json(reason: str) -> dict[str, Any]:
    return refusal(f"the body is not valid JSON: {reason}")


@pytest.fixture(scope="module")
def stub(cert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stub-admin-bounds")
    environment = platform_environment(
        cert_dir, tag="stub-admin-bounds", work_dir=work, OTEL_SDK_DISABLED="true",
        STUB_DELAY_SECONDS="0.05",
    )
    with running_stack(environment, work, only=("stub",)) as stack:
        yield stack


@pytest.fixture
async def session(stub: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with client_session(stub.ca_file) as client:
        yield client
        async with client.put(f"{stub.stub_url}/admin/behaviour", json=INITIAL) as response:
            assert response.status == 200, await response.text()  # as every test found it


def behaviour_file(stub: Stack) -> Path:
    return Path(stub.environment["STUB_BEHAVIOUR_FILE"])


async def send(session: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None
               ) -> tuple[int, Any]:
    payload = None if data is None else io.BytesIO(data)  # with its Content-Length
    async with session.request(method, url, data=payload,
                               headers={"Content-Type": "application/json"}) as response:
        return response.status, strict_json.loads(await response.read())


async def show(session: aiohttp.ClientSession, stub: Stack) -> Any:
    status, document = await send(session, "GET", f"{stub.stub_url}/admin/behaviour")
    assert status == 200
    return document


# -- PUT /admin/behaviour ------------------------------------------------------------------------

def ids(count: int) -> list[str]:
    return [f"ID{n:08d}" for n in range(count)]


@pytest.mark.parametrize(("body", "answer"), [
    (b'{"delaySeconds": NaN}', not_json("NaN is not a JSON number")),
    (b'{"jitterSeconds": Infinity}', not_json("Infinity is not a JSON number")),
    (b'{"failureRatio": NaN}', not_json("NaN is not a JSON number")),
    (b'{"delaySeconds": 1e400}', not_json('the number "1e400" is too large')),
    (b'{"delaySeconds": 1e300}', OUT_OF_RANGE),
    (b'{"delaySeconds": 1e9}', OUT_OF_RANGE),
    (b'{"delaySeconds": 3600.5}', OUT_OF_RANGE),
    (b'{"delaySeconds": ' + b"9" * 99 + b"}", OUT_OF_RANGE),
    (b'{"delaySeconds": ' + b"9" * 400 + b"}", not_json("an integer has more than 100 digits")),
    (b'{"jitterSeconds": 3601}', refusal("jitterSeconds must be a number from 0 to 3600")),
    (b'{"failureRatio": 1.5}', refusal("failureRatio must be a number from 0 to 1")),
    (b'{"delaySeconds": 1, "delaySeconds": 2}', not_json('the name "delaySeconds" appears twice in an object')),
    (json.dumps({"delaySeconds": 1, "failIds": ids(MAX_LISTED_IDS + 1)}).encode(),
     refusal("failIds must be a list of at most 10000 equipment ids")),
    (json.dumps({"unknownIds": ["A" * (EQUIPMENT_ID_MAX_LENGTH + 1)]}).encode(),
     refusal("unknownIds must list equipment ids (6 to 256 letters and digits): "
             '"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA…" is not one')),
    (json.dumps({"delaySeconds": 1, MARKER: 1}).encode(),
     refusal(f'unknown fields: "{MARKER}" (known: delaySeconds, jitterSeconds, failureRatio, failIds, '
             "unknownIds)")),
], ids=["nan-delay", "infinite-jitter", "nan-ratio", "overflowing-delay", "1e300-delay", "1e9-delay",
        "delay-past-bound", "99-digit-delay", "400-digit-delay", "jitter-past-bound", "ratio-past-one",
        "duplicate-name", "10001-ids", "too-long-id", "unknown-field"])
async def test_an_admin_change_past_a_bound_is_refused_and_changes_nothing(
    stub: Stack, session: aiohttp.ClientSession, body: bytes, answer: dict[str, Any]
) -> None:
    before, shared = await show(session, stub), behaviour_file(stub).read_bytes()
    assert await send(session, "PUT", f"{stub.stub_url}/admin/behaviour", body) == (400, answer)
    assert await show(session, stub) == before == INITIAL
    assert behaviour_file(stub).read_bytes() == shared


async def test_an_admin_body_past_the_limit_is_refused_before_it_is_read(
    stub: Stack, session: aiohttp.ClientSession
) -> None:
    """The probe's body: a million ids, about 13 MB (it took 12 s and wrote a 95 MB file)."""
    before, shared = await show(session, stub), behaviour_file(stub).read_bytes()
    body = json.dumps({"failIds": ids(1_000_000)}).encode()
    assert await send(session, "PUT", f"{stub.stub_url}/admin/behaviour", body) == (413, TOO_LARGE)
    assert await show(session, stub) == before
    assert behaviour_file(stub).read_bytes() == shared


async def test_a_chunked_admin_body_past_the_limit_is_cut_off(
    stub: Stack, session: aiohttp.ClientSession
) -> None:
    """No Content-Length to refuse up front: Sanic counts the chunks as they come."""
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"failIds": ["ABC123"'
        for _ in range(DEFAULT_MAX_BODY_BYTES // 10_000 + 1):
            yield b', "ABC123"' * 1_000
        yield b"]}"

    before, shared = await show(session, stub), behaviour_file(stub).read_bytes()
    async with session.put(f"{stub.stub_url}/admin/behaviour", data=chunks()) as response:
        assert (response.status, await response.json()) == (413, TOO_LARGE)
    assert await show(session, stub) == before
    assert behaviour_file(stub).read_bytes() == shared


async def test_an_admin_change_at_the_bounds_is_applied_and_shared(
    stub: Stack, session: aiohttp.ClientSession
) -> None:
    longest = "A" * EQUIPMENT_ID_MAX_LENGTH
    change = {"delaySeconds": 3600, "jitterSeconds": 3600, "failureRatio": 1,
              "failIds": ids(MAX_LISTED_IDS), "unknownIds": [longest]}
    body = json.dumps(change).encode()
    assert len(body) <= DEFAULT_MAX_BODY_BYTES
    status, shown = await send(session, "PUT", f"{stub.stub_url}/admin/behaviour", body)
    assert status == 200
    assert shown == {**change, "delaySeconds": 3600.0, "jitterSeconds": 3600.0, "failureRatio": 1.0}
    assert await show(session, stub) == shown
    assert strict_json.loads(behaviour_file(stub).read_bytes()) == shown


# -- POST /api/v1/equipment/cpe/{id} ------------------------------------------------------------

def configuration(**raw_fields: str) -> bytes:
    """A valid configuration body with some fields written as raw JSON text."""
    body = json.dumps(request_body())
    for name, raw in raw_fields.items():
        body = body[:-1] + f', "{name}": {raw}}}'
    return body.encode()


@pytest.mark.parametrize(("body", "answer"), [
    (configuration(comment="NaN"), not_json("NaN is not a JSON number")),
    (configuration(comment="-Infinity"), not_json("-Infinity is not a JSON number")),
    (configuration(comment="1e999"), not_json('the number "1e999" is too large')),
    (configuration(timeoutInSeconds="1" * 5000), not_json("an integer has more than 100 digits")),
    (configuration(timeoutInSeconds="5"), not_json('the name "timeoutInSeconds" appears twice in an object')),
    (b'{"timeoutInSeconds": 14, "parameters": {"username": "a", "username": "b"}}',
     not_json('the name "username" appears twice in an object')),
], ids=["nan", "minus-infinity", "overflowing-float", "5000-digit-integer", "duplicate-name",
        "nested-duplicate-name"])
async def test_a_configuration_body_that_is_not_strict_json_is_refused_saying_why(
    stub: Stack, session: aiohttp.ClientSession, body: bytes, answer: dict[str, Any]
) -> None:
    url = f"{stub.stub_url}{create_path(KNOWN_ID)}"
    assert await send(session, "POST", url, body) == (400, answer)


@pytest.mark.parametrize(("length", "status"), [(EQUIPMENT_ID_MAX_LENGTH, 200), (EQUIPMENT_ID_MAX_LENGTH + 1, 404)])
async def test_an_equipment_id_has_at_most_256_characters(
    stub: Stack, session: aiohttp.ClientSession, length: int, status: int
) -> None:
    url = f"{stub.stub_url}{create_path('A' * length)}"
    assert (await send(session, "POST", url, json.dumps(request_body()).encode()))[0] == status


async def test_the_longest_id_service_b_accepts_is_configured_by_the_stub(stub: Stack) -> None:
    settings = WorkerSettings.from_env({**stub.environment, "SERVICE_A_TIMEOUT_SECONDS": "10"})
    async with ServiceAClient(settings, traced=False) as service_a:
        await service_a.configure("A" * SERVICE_B_ID_MAX_LENGTH, parse_provisioning_request(request_body()))


async def test_the_largest_body_service_b_accepts_fits_as_the_worker_sends_it(stub: Stack) -> None:
    """Service B's bounds at their defaults, each at its maximum, in credentials of DEL
    characters, which the worker's JSON encoder writes as six bytes each (\\u007f)."""
    limits = ApiSettings.from_env({}).request_limits
    credential = "\x7f" * limits.max_credential_length
    body = {"timeoutInSeconds": limits.max_timeout_seconds, "parameters": {
        "username": credential, "password": credential, "vlan": 4094,
        "interfaces": [limits.max_interface_number] * limits.max_interfaces,
    }}
    request = parse_provisioning_request(body, limits)
    settings = WorkerSettings.from_env({**stub.environment, "SERVICE_A_TIMEOUT_SECONDS": "10"})
    async with ServiceAClient(settings, traced=False) as service_a:
        await service_a.configure(KNOWN_ID, request)  # 200: returns, raises nothing
    print(f"largest body the worker sends at Service B's default bounds: "
          f"{len(json.dumps(request.to_wire()).encode())} bytes "
          f"(the stub takes {DEFAULT_MAX_BODY_BYTES})")


# -- the stub's own metrics ----------------------------------------------------------------------

async def test_no_value_from_a_request_becomes_a_metric_label(
    stub: Stack, session: aiohttp.ClientSession
) -> None:
    url = stub.stub_url
    requests = [
        ("POST", f"{url}{create_path(MARKER)}", json.dumps(request_body()).encode()),
        ("POST", f"{url}{create_path(MARKER + 'A' * 300)}", None),
        ("POST", f"{url}{create_path(MARKER + '-x')}", None),
        ("POST", f"{url}{create_path(MARKER)}", b"{" + MARKER.encode()),
        ("GET", f"{url}/{MARKER}", None),
        ("GET", f"{url}/admin/{MARKER}", None),
        ("PUT", f"{url}/admin/behaviour", json.dumps({MARKER: 1}).encode()),
        ("PUT", f"{url}/admin/behaviour", json.dumps({"failIds": [MARKER]}).encode()),
    ]
    for method, target, data in requests:
        async with session.request(method, target, data=data) as response:
            await response.read()
    samples = await asyncio.to_thread(scrape, int(stub.environment["STUB_METRICS_PORT"]))
    values_by_label: dict[str, set[str]] = {}
    for _, sample_labels in samples:
        for name, value in sample_labels:
            values_by_label.setdefault(name, set()).add(value)
    assert not [value for values in values_by_label.values() for value in values if MARKER in value]
    assert values_by_label["answer"] <= set(ANSWER_KINDS)
    assert values_by_label["route"] <= ROUTES
    assert "unmatched" in values_by_label["route"]  # the requests above were counted
