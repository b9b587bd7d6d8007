"""One worker process: its store, Service A client and broker, from start to graceful stop.

With webhooks on (``WEBHOOK_ALLOWED_HOSTS``), the process also delivers them: a second consumer,
on the webhooks queue, with its own channel, prefetch and HTTPS session
(``provisioning.webhooks.delivery`` says why the pool delivers), drained with the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack

import uvloop

from ..backoff import Backoff
from ..collector import tune_collector
from ..equipment_lease import EquipmentLease
from ..logs import configure_logging
from ..messaging import Broker
from ..parent_death import die_with_parent
from ..serialization import Serializer
from ..settings import EquipmentConcurrency, WorkerSettings
from ..store import TaskStore
from ..telemetry.metrics import WorkerMetrics
from ..telemetry.tracing import setup_tracing, shutdown_tracing
from ..webhooks.callback_url import CallbackPolicy
from ..webhooks.client import WebhookClient
from ..webhooks.delivery import WebhookDeliverer
from ..webhooks.outbox import WebhookOutbox
from ..webhooks.retries import RetrySchedule
from .consumer import TaskProcessor
from .service_a import ServiceAClient

log = logging.getLogger(__name__)


async def serve(settings: WorkerSettings, stop: asyncio.Event, metrics: WorkerMetrics, *,
                traced: bool) -> None:
    """Consume until ``stop`` is set, then stop taking tasks, drain, and close everything."""
    async with (
        TaskStore(settings.redis) as store,
        ServiceAClient(settings, traced=traced) as service_a,
        AsyncExitStack() as optional,
    ):
        broker = Broker(settings.own_broker, name=f"worker-{os.getpid()}", metrics=metrics.broker)
        # Over the store's client and pool, so closed with the store.
        mode = settings.equipment_concurrency
        lease = EquipmentLease.for_worker(store.redis, settings) if mode.exclusive else None
        turns = (Serializer.over(store, broker, settings.broker, metrics.turns)
                 if mode is EquipmentConcurrency.SERIALIZE else None)
        broker.add_consumer(
            settings.broker.tasks_queue,
            TaskProcessor(
                store=store,
                broker=broker,
                service_a=service_a,
                results_queue=settings.broker.results_queue,
                attempts=settings.service_a_attempts,
                backoff=Backoff(settings.backoff_initial_seconds, settings.backoff_max_seconds),
                metrics=metrics,
                lease=lease,
                turns=turns,
                attempt_log=store,
                webhooks=WebhookOutbox(store, broker, settings.broker.webhooks_queue),
            ),
            prefetch=settings.prefetch,
        )
        if settings.webhooks.enabled:
            webhook_client = await optional.enter_async_context(
                WebhookClient(settings.webhooks, traced=traced))
            broker.add_consumer(
                settings.broker.webhooks_queue,
                WebhookDeliverer(
                    sender=webhook_client,
                    broker=broker,
                    policy=CallbackPolicy(settings.webhooks),
                    webhooks_queue=settings.broker.webhooks_queue,
                    schedule=RetrySchedule(settings.broker.webhook_retry_delays),
                    metrics=metrics.webhooks,
                ),
                prefetch=settings.webhooks.prefetch,
            )
        async with broker:
            # /health on the metrics port (probes): ready while consuming, connected to RabbitMQ.
            metrics.health = lambda: _health(broker, consuming=True)
            log.info("worker consuming %s", settings.broker.tasks_queue,
                     extra={"prefetch": settings.prefetch,
                            "equipment_concurrency": settings.equipment_concurrency.value})
            await stop.wait()
            log.info("stopping: no new tasks; finishing %d in flight", broker.in_flight)
            await broker.stop_consuming()
            metrics.health = lambda: _health(broker, consuming=False)
            left = await broker.drain(settings.shutdown_grace_seconds)
            if left:
                log.warning("handing %d unfinished tasks back to the queue", left)
    log.info("worker stopped")


def _health(broker: Broker, *, consuming: bool) -> dict[str, bool | str]:
    """The checks of /health; a blocked broker (a resource alarm) is named but fails nothing:
    the worker holds its results until the alarm clears, and a restart or a drain cures
    nothing."""
    checks: dict[str, bool | str] = {"rabbitmq": broker.connected, "consuming": consuming}
    blocked = broker.blocked
    if blocked is not None:
        checks["rabbitmqBlocked"] = blocked
    return checks


def run(settings: WorkerSettings, index: int = 0) -> None:
    """Entry point of worker process number ``index`` (the target of the pool's children)."""
    # A pool killed outright (SIGKILL, the OOM killer) sends its children SIGTERM: they drain
    # and stop, instead of consuming on as orphans beside the pool started in its place.
    die_with_parent(signal.SIGTERM)
    configure_logging("worker", settings.log_level)
    provider = setup_tracing("worker")
    metrics = WorkerMetrics()
    metrics.health = lambda: {"rabbitmq": False, "consuming": False}  # not started yet
    metrics.serve(settings.metrics.host, settings.metrics.port(index))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tune_collector()  # started: what the process holds now is frozen
        await serve(settings, stop, metrics, traced=provider is not None)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    finally:
        metrics.close()
        shutdown_tracing(provider)
