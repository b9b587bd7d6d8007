"""One task is one trace: context crosses RabbitMQ in both directions (real broker, real stub).

Service B's enqueue code publishes a task under a server span, the worker's processor consumes
it and calls the stub over HTTPS, publishes the result, and Service B's results consumer writes
the final status. Spans of this process are captured in memory.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from cpe_devkit.ports import free_port
from cpe_devkit.stack import Stack, running_stack
from provisioning.api.context import ServiceContext
from provisioning.api.results import ResultRecorder
from provisioning.api.routes import _enqueue
from provisioning.api.waiters import Waiters
from provisioning.backoff import Backoff
from provisioning.messaging import Broker
from provisioning.models import DeviceParameters, ProvisioningRequest, TaskStatus
from provisioning.settings import ApiSettings, WorkerSettings
from provisioning.store import TaskStore
from provisioning.telemetry.metrics import ApiMetrics, WorkerMetrics
from provisioning.telemetry.tracing import _instrument_redis
from provisioning.worker.consumer import TaskProcessor
from provisioning.worker.service_a import ServiceAClient

PASSWORD = "trace-secret-9f3"


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _instrument_redis(provider)
    return exporter


@pytest.fixture
def stub(cert_dir: Path, tmp_path: Path, run_environment: dict[str, str]) -> Iterator[Stack]:
    environment = {
        **os.environ, **run_environment, "CERT_DIR": str(cert_dir), "STUB_PORT": str(free_port()),
        "STUB_DELAY_SECONDS": "0.1", "STUB_METRICS_PORT": "0", "OTEL_SDK_DISABLED": "true",
    }
    with running_stack(environment, tmp_path, only=("stub",)) as stack:
        yield stack


@pytest.fixture
async def platform_in_process(
    stub: Stack, run_environment: dict[str, str], cert_dir: Path
) -> AsyncIterator[tuple[ServiceContext, TaskStore]]:
    environment = {**run_environment, "CERT_DIR": str(cert_dir),
                   "SERVICE_A_URL": stub.stub_url, "SERVICE_A_ATTEMPTS": "1"}
    api_settings = ApiSettings.from_env(environment)
    worker_settings = WorkerSettings.from_env(environment)
    async with TaskStore(api_settings.redis) as store, ServiceAClient(worker_settings, traced=True) as service_a:
        api_metrics = ApiMetrics()
        api_broker = Broker(api_settings.broker, name="trace-test-b", metrics=api_metrics.broker)
        api_broker.add_consumer(api_settings.broker.results_queue,
                                ResultRecorder(store, api_metrics), prefetch=10)
        worker_metrics = WorkerMetrics()
        worker_broker = Broker(worker_settings.broker, name="trace-test-worker",
                               metrics=worker_metrics.broker)
        worker_broker.add_consumer(
            worker_settings.broker.tasks_queue,
            TaskProcessor(store=store, broker=worker_broker, service_a=service_a,
                          results_queue=worker_settings.broker.results_queue, attempts=1,
                          backoff=Backoff(0.1, 0.1), metrics=worker_metrics),
            prefetch=10,
        )
        async with api_broker, worker_broker:
            await api_broker.wait_connected(10)
            await worker_broker.wait_connected(10)
            context = ServiceContext(api_settings)
            waiters = Waiters(api_settings.redis, store.events_channel, limit=10,
                              metrics=api_metrics.completion)
            context.attach(store, api_broker, waiters)
            yield context, store
            await waiters.close()


async def run_one_task(context: ServiceContext, store: TaskStore) -> str:
    task_id = str(uuid.uuid4())
    request = ProvisioningRequest(14, DeviceParameters("admin", PASSWORD, (1, 2)))
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /api/v1/equipment/cpe/<equipment_id>", kind=SpanKind.SERVER):
        await _enqueue(context, task_id, "TRACE00001", request)
    for _ in range(200):
        with suppress_instrumentation():  # the test's own polling is no part of the trace
            record = await store.get(task_id)
        if record is not None and record.status.is_final:
            assert record.status is TaskStatus.COMPLETED
            return task_id
        await asyncio.sleep(0.05)
    raise AssertionError("the task never finished")


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return matching[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


async def test_one_task_is_one_trace_across_both_queues(
    spans: InMemorySpanExporter, platform_in_process: tuple[ServiceContext, TaskStore],
    run_environment: dict[str, str],
) -> None:
    spans.clear()
    await run_one_task(*platform_in_process)
    await asyncio.sleep(0.2)  # the results consumer acks after the write
    tasks_queue, results_queue = run_environment["TASKS_QUEUE"], run_environment["RESULTS_QUEUE"]
    finished = list(spans.get_finished_spans())
    root = by_name(finished, "POST /api/v1/equipment/cpe/<equipment_id>")
    trace_ids = {span.context.trace_id for span in finished if span.context is not None}
    assert trace_ids == {root.context.trace_id}, sorted(
        (span.name, span.context.trace_id == root.context.trace_id) for span in finished)

    publish_task = by_name(finished, f"publish {tasks_queue}")
    process_task = by_name(finished, f"process {tasks_queue}")
    call_stub = next(s for s in finished if s.kind is SpanKind.CLIENT and s.name.startswith("POST"))
    publish_result = by_name(finished, f"publish {results_queue}")
    process_result = by_name(finished, f"process {results_queue}")

    assert parent_of(publish_task) == root.context.span_id
    assert parent_of(process_task) == publish_task.context.span_id
    assert parent_of(call_stub) == process_task.context.span_id
    assert parent_of(publish_result) == process_task.context.span_id
    assert parent_of(process_result) == publish_result.context.span_id
    status_writes = [s for s in finished if parent_of(s) == process_result.context.span_id
                     and s.kind is SpanKind.CLIENT]
    assert status_writes, "the final status write (Redis) is a child of the result's process span"


async def test_messaging_spans_follow_the_rabbitmq_conventions(
    spans: InMemorySpanExporter, platform_in_process: tuple[ServiceContext, TaskStore],
    run_environment: dict[str, str],
) -> None:
    spans.clear()
    task_id = await run_one_task(*platform_in_process)
    queue = run_environment["TASKS_QUEUE"]
    finished = list(spans.get_finished_spans())
    publish = by_name(finished, f"publish {queue}")
    process = by_name(finished, f"process {queue}")
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    for span in (publish, process):
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "rabbitmq"
        assert attributes["messaging.destination.name"] == queue
        assert attributes["messaging.rabbitmq.destination.routing_key"] == queue
        assert attributes["messaging.message.id"] == task_id
    assert dict(publish.attributes or {})["messaging.operation.name"] == "publish"
    assert dict(process.attributes or {})["messaging.operation.name"] == "process"
    assert int(str(dict(process.attributes or {})["messaging.rabbitmq.message.delivery_tag"])) >= 1


async def test_no_span_carries_the_device_password(
    spans: InMemorySpanExporter, platform_in_process: tuple[ServiceContext, TaskStore],
) -> None:
    spans.clear()
    await run_one_task(*platform_in_process)
    finished = list(spans.get_finished_spans())
    assert finished
    for span in finished:
        for value in (span.attributes or {}).values():
            assert PASSWORD not in str(value), f"{span.name} leaks the password"
        for event in span.events:
            assert PASSWORD not in str(event.attributes), f"{span.name} leaks the password"
