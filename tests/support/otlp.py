"""A minimal OTLP/HTTP trace receiver for the tests that follow one task through every
service, and the wait for a task's whole trace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


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


async def wait_for_trace(otlp: OtlpReceiver, task_id: str, services: set[str]) -> list[ReceivedSpan]:
    """The spans of the trace that the task's creation started."""
    for _ in range(100):
        created = [s for s in otlp.spans if s.service == "service-b" and s.name.startswith("POST ")
                   and task_id in s.attributes.get("provisioning.task.id", "")]
        trace_ids = {s.trace_id for s in created}
        trace = [s for s in otlp.spans if s.trace_id in trace_ids]
        # A consumer's process span ends (and is exported) after the spans inside it: wait
        # for Service B's and, when the worker is asked for, the worker's.
        consumers = {"service-b"} | ({"worker"} & services)
        processed = {s.service for s in trace if s.name.startswith("process ")}
        if {s.service for s in trace} >= services and processed >= consumers:
            return trace
        await asyncio.sleep(0.1)
    raise AssertionError(f"no complete trace for {task_id}: {[(s.service, s.name) for s in otlp.spans]}")
