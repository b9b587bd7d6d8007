"""Traces of the real processes, exported over OTLP to a receiver started by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cpe_devkit.client import DEVICE_PASSWORD, Client, client_session
from cpe_devkit.ports import free_port
from cpe_devkit.stack import Stack, throwaway_stack
from tests.support.platforms import e2e_environment


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


class OtlpReceiver:
    """The smallest OTLP/HTTP trace receiver: it keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        service=service, name=span.name, kind=span.kind,
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: str(a.value) for a in span.attributes},
                    ))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")


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


async def wait_for_trace(otlp: OtlpReceiver, task_id: str, services: set[str]) -> list[ReceivedSpan]:
    """The spans of the trace that the task's creation started."""
    for _ in range(100):
        created = [s for s in otlp.spans if s.service == "service-b" and s.name.startswith("POST ")
                   and task_id in s.attributes.get("provisioning.task.id", "")]
        trace_ids = {s.trace_id for s in created}
        trace = [s for s in otlp.spans if s.trace_id in trace_ids]
        if {s.service for s in trace} >= services and any(
            s.name.startswith("process ") and s.service == "service-b" for s in trace
        ):
            return trace
        await asyncio.sleep(0.1)
    raise AssertionError(f"no complete trace for {task_id}: {[(s.service, s.name) for s in otlp.spans]}")


@pytest.mark.timeout(90)
async def test_one_task_is_one_trace_through_all_three_services(
    receiver: tuple[OtlpReceiver, int], traced_platform: Stack
) -> None:
    otlp = receiver[0]
    async with client_session(traced_platform.ca_file) as session:
        client = Client(session, traced_platform.api_url)
        _, created = await client.create("TRACED0001")
        task_id = created["taskId"]
        await client.final_status("TRACED0001", task_id)
    trace = await wait_for_trace(otlp, task_id, {"service-b", "worker", "service-a-stub"})

    assert len({s.trace_id for s in trace}) == 1
    names = {(s.service, s.name) for s in trace}
    queues = traced_platform.environment
    for expected in [
        ("service-b", "POST /api/v1/equipment/cpe/<equipment_id>"),
        ("service-b", f"publish {queues['TASKS_QUEUE']}"),
        ("worker", f"process {queues['TASKS_QUEUE']}"),
        ("service-a-stub", "POST /api/v1/equipment/cpe/<equipment_id>"),
        ("worker", f"publish {queues['RESULTS_QUEUE']}"),
        ("service-b", f"process {queues['RESULTS_QUEUE']}"),
    ]:
        assert expected in names, f"missing {expected} in {sorted(names)}"
    stub_server = next(s for s in trace if s.service == "service-a-stub")
    worker_call = next(s for s in trace if s.span_id == stub_server.parent_span_id)
    assert worker_call.service == "worker"  # the stub continues the worker's HTTP client span


@pytest.mark.timeout(90)
async def test_status_polls_carry_the_task_id_and_no_span_carries_the_password(
    receiver: tuple[OtlpReceiver, int], traced_platform: Stack
) -> None:
    otlp = receiver[0]
    async with client_session(traced_platform.ca_file) as session:
        client = Client(session, traced_platform.api_url)
        _, created = await client.create("TRACED0002")
        await client.final_status("TRACED0002", created["taskId"])
    await wait_for_trace(otlp, created["taskId"], {"service-b", "worker", "service-a-stub"})
    polls = [s for s in otlp.spans if s.name == "GET /api/v1/equipment/cpe/<equipment_id>/task/<task_id>"]
    assert polls and all(created["taskId"] in s.attributes["provisioning.task.id"] for s in polls)
    for span in otlp.spans:
        assert not any(DEVICE_PASSWORD in value for value in span.attributes.values()), span.name
