"""Service B's application factory. Importing this module opens nothing."""

from __future__ import annotations

import contextlib
import os

from sanic import Sanic

from .. import names
from ..errors import BrokerUnavailable
from ..logs import configure_logging
from ..messaging import Broker
from ..serving import sanic_process_index
from ..settings import ApiSettings, EquipmentConcurrency
from ..store import TaskStore
from ..telemetry.http import instrument_http
from ..telemetry.tracing import setup_tracing, shutdown_tracing
from .context import ServiceApp, ServiceContext
from .contract import error_answer
from .guards import require_bearer_token
from .results import ResultRecorder
from .routes import equipment, meta
from .routes_v2 import tasks_v2
from .waiters import Waiters

DRAIN_SECONDS = 10.0
STARTUP_CONNECT_SECONDS = 5.0
GRACEFUL_SHUTDOWN_SECONDS = 10.0  # open keep-alive connections get this long on SIGTERM


def create_app(settings: ApiSettings | None = None) -> ServiceApp:
    settings = settings or ApiSettings.from_env()
    configure_logging("service-b", settings.log_level)
    app: ServiceApp = Sanic(
        names.API_APP_NAME, ctx=ServiceContext(settings), configure_logging=False
    )
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = GRACEFUL_SHUTDOWN_SECONDS
    app.blueprint(equipment)
    app.blueprint(meta)
    app.blueprint(tasks_v2)
    app.exception(Exception)(error_answer)
    instrument_http(app, app.ctx.metrics.http)
    require_bearer_token(app, settings.tokens)

    @app.before_server_start
    async def open_resources(app: ServiceApp) -> None:
        app.ctx.tracer_provider = setup_tracing("service-b")
        metrics = app.ctx.metrics
        metrics.serve(settings.metrics.host, settings.metrics.port(sanic_process_index()))
        store = TaskStore(settings.redis, history_limit=settings.history_limit)
        broker = Broker(settings.broker, name=f"service-b-{os.getpid()}", metrics=metrics.broker)
        waiters = Waiters(settings.redis, store.events_channel,
                          limit=settings.completion.max_waiters, metrics=metrics.completion,
                          client_name=f"service-b-{os.getpid()}-task-events")
        app.ctx.attach(store, broker, waiters)
        serialize = settings.equipment_concurrency is EquipmentConcurrency.SERIALIZE
        broker.add_consumer(
            settings.broker.results_queue,
            ResultRecorder(store, metrics, app.ctx.serializer if serialize else None,
                           webhooks=app.ctx.outbox),
            prefetch=settings.results_prefetch,
        )
        waiters.start()
        await broker.start()
        # Serve once connected, or after a short wait: with RabbitMQ down, creates answer 500.
        with contextlib.suppress(BrokerUnavailable):
            await broker.wait_connected(STARTUP_CONNECT_SECONDS)

    @app.before_server_stop
    async def stop_consuming(app: ServiceApp) -> None:
        broker = app.ctx.broker
        await broker.stop_consuming()
        await broker.drain(DRAIN_SECONDS)

    @app.after_server_stop
    async def close_resources(app: ServiceApp) -> None:
        store, broker, waiters = app.ctx.detach()
        if waiters is not None:
            await waiters.close()
        if broker is not None:
            await broker.close()
        if store is not None:
            await store.close()
        app.ctx.metrics.close()
        shutdown_tracing(app.ctx.tracer_provider)

    return app
