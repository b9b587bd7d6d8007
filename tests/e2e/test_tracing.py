"""Traces of the real processes, exported over OTLP to a receiver started by the test."""

from __future__ import annotations

import pytest

from cpe_devkit.client import DEVICE_PASSWORD, Client, client_session
from cpe_devkit.stack import Stack
from tests.support.otlp import OtlpReceiver, wait_for_trace


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
