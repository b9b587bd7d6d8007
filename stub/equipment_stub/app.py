"""The stub's application factory. Importing this module opens nothing."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

from opentelemetry.sdk.trace import TracerProvider
from sanic import HTTPResponse, Request, Sanic, json
from sanic.config import Config

from provisioning.logs import configure_logging
from provisioning.serving import sanic_process_index

from .answers import INTERNAL_ERROR, SUCCESS, InvalidBody, UnknownEquipment, answer, error_answer
from .behaviour import Answer, behaviour_to_document
from .control import BehaviourControl
from .limits import MAX_SECONDS
from .metrics import ABANDONED, INVALID, CallsInProgress, StubMetrics
from .openapi import openapi_document
from .request_body import check_configuration, check_equipment_id, decode_json
from .settings import StubSettings
from .tracing import SERVICE_NAME, instrument, mark_equipment, start_tracing, stop_tracing


class StubContext:
    def __init__(self, settings: StubSettings) -> None:
        self.settings = settings
        self.control = BehaviourControl(settings.behaviour, settings.behaviour_file)
        self.follower: asyncio.Task[None] | None = None
        self.metrics = StubMetrics()
        self.calls = CallsInProgress(self.metrics.overlapping_calls)
        self.tracer_provider: TracerProvider | None = None


StubApp = Sanic[Config, StubContext]
# A minute above the longest delay a call can have, so that a call at the bound still answers.
RESPONSE_TIMEOUT_SECONDS = MAX_SECONDS + 60
StubRequest = Request[StubApp, SimpleNamespace]


async def _work_on(calls: CallsInProgress, equipment_id: str, delay: float) -> None:
    """Work on one device for ``delay`` seconds. Sanic cancels a handler whose client hung up
    (a killed worker, a client timeout); such a call still counts as in progress until its
    delay would have ended, as on a Service A that does not stop configuring a device when its
    client goes away, so the overlap count sees a dead worker's call that may still be running."""
    calls.begin(equipment_id)
    loop = asyncio.get_running_loop()
    ends = loop.time() + delay
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        loop.call_at(ends, calls.end, equipment_id)
        raise
    calls.end(equipment_id)


def create_app(settings: StubSettings | None = None) -> StubApp:
    settings = settings or StubSettings.from_env()
    configure_logging(SERVICE_NAME, settings.log_level)
    app: StubApp = Sanic("service_a_stub", ctx=StubContext(settings), configure_logging=False)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # Sanic cuts a handler off after RESPONSE_TIMEOUT (60 s by default) with a 503: exactly the
    # stub's default delay. Its delay can change at run time, so the cut-off sits above its bound.
    app.config.RESPONSE_TIMEOUT = RESPONSE_TIMEOUT_SECONDS
    # One limit for every body (Sanic's default is 100 MB): Sanic refuses a longer body with a
    # 413 before reading it (Content-Length) or as soon as it passes the limit (chunked). Both
    # routes that take a body take small ones, so a per-route limit would buy nothing.
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.exception(Exception)(error_answer)
    instrument(app, app.ctx.metrics.http)

    @app.post("/api/v1/equipment/cpe/<equipment_id:str>")
    async def configure(request: StubRequest, equipment_id: str) -> HTTPResponse:
        metrics = request.app.ctx.metrics
        metrics.in_progress.inc()
        kind = INVALID
        try:
            outcome = await _answer(request, equipment_id)
            kind = outcome.name.lower()
        except asyncio.CancelledError:
            kind = ABANDONED
            raise
        finally:
            metrics.in_progress.dec()
            metrics.answers.labels(answer=kind).inc()
        if outcome is Answer.SUCCESS:
            return answer(200, SUCCESS)
        if outcome is Answer.UNKNOWN_EQUIPMENT:
            raise UnknownEquipment()
        return answer(500, INTERNAL_ERROR)

    async def _answer(request: StubRequest, equipment_id: str) -> Answer:
        behaviour = request.app.ctx.control.current
        check_equipment_id(equipment_id)
        mark_equipment(equipment_id)
        if not behaviour.knows(equipment_id):
            return Answer.UNKNOWN_EQUIPMENT
        check_configuration(decode_json(request.body))
        await _work_on(request.app.ctx.calls, equipment_id, behaviour.delay())
        return behaviour.answer(equipment_id)

    @app.get("/admin/behaviour")
    async def show_behaviour(request: StubRequest) -> HTTPResponse:
        return json(behaviour_to_document(request.app.ctx.control.current))

    @app.put("/admin/behaviour")
    async def change_behaviour(request: StubRequest) -> HTTPResponse:
        """Change delay, jitter, failure ratio or the id lists; every stub process follows."""
        try:
            updated = request.app.ctx.control.change(decode_json(request.body))
        except ValueError as error:
            raise InvalidBody(str(error)) from None
        return json(behaviour_to_document(updated))

    @app.get("/openapi.json")
    async def openapi(request: StubRequest) -> HTTPResponse:
        return json(openapi_document())

    @app.get("/health")
    async def health(request: StubRequest) -> HTTPResponse:
        return answer(200, "ok")

    @app.before_server_start
    async def follow_behaviour(app: StubApp) -> None:
        app.ctx.tracer_provider = start_tracing()
        app.ctx.metrics.serve(settings.metrics.host, settings.metrics.port(sanic_process_index()))
        app.ctx.control.refresh()
        app.ctx.follower = asyncio.create_task(app.ctx.control.follow())

    @app.after_server_stop
    async def stop_following(app: StubApp) -> None:
        if app.ctx.follower is not None:
            app.ctx.follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app.ctx.follower
        app.ctx.metrics.close()
        stop_tracing(app.ctx.tracer_provider)

    return app
