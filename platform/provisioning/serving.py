"""Serve a Sanic application factory over HTTPS with one or several worker processes, every
app with the bounds of ``HttpServerSettings`` (``http_protocol``) and RFC 9110's rules
(``http_rules``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from sanic import Sanic
from sanic.worker.loader import AppLoader

from .collector import tune_collector
from .http_protocol import BoundedHttpProtocol, apply_limits
from .http_rules import apply_rules
from .open_files import raise_open_file_limit
from .settings import HttpServerSettings, TlsSettings
from .tls import server_tls

AppFactory = Callable[[], Sanic]  # type: ignore[type-arg]


def bounded_app(factory: AppFactory, http: HttpServerSettings) -> Sanic[Any, Any]:
    """``factory``'s app with the limits and rules every server here applies: what each Sanic
    worker process builds (picklable as a ``partial``, as Sanic's manager needs)."""
    app = factory()
    apply_limits(app, http)
    apply_rules(app)
    app.after_server_start(_tune_collector)
    return app


async def _tune_collector(app: Sanic[Any, Any]) -> None:
    tune_collector()


def serve_https(
    factory: AppFactory,
    *,
    host: str,
    port: int,
    workers: int,
    tls: TlsSettings,
    http: HttpServerSettings,
    backlog: int = 1024,
) -> None:
    """Blocks until the server stops (SIGTERM or SIGINT: graceful).

    With one worker the server runs in this process: no manager process, and none of the
    manager's start-up race (Sanic 25.12 spins in ``wait_for_ack`` when SIGTERM arrives right
    after a worker's ack). With several, Sanic's manager spawns them, each building its own
    app from ``factory`` (which must therefore be picklable).
    """
    raise_open_file_limit()  # before the app caps its connections by it; workers inherit it
    loader = AppLoader(factory=partial(bounded_app, factory, http))
    app = loader.load()
    single = workers == 1
    app.prepare(
        host=host,
        port=port,
        workers=workers,
        ssl=server_tls(tls),
        backlog=backlog,
        access_log=False,
        motd=False,
        protocol=BoundedHttpProtocol,
        single_process=single,
    )
    # A connection is counted (HTTP_MAX_CONNECTIONS) once its TLS handshake is done: the
    # handshake gets the request deadline (uvloop's default is 60 s). prepare() takes no server
    # arguments; the settings it records are what every worker's create_server is given.
    app.state.server_info[-1].settings["asyncio_server_kwargs"] = {
        "ssl_handshake_timeout": http.request_deadline_seconds}
    if single:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


def sanic_process_index() -> int:
    """This Sanic worker's index (0, 1, ...): 0 in single-process mode.

    Sanic names its workers ``Sanic-Server-<server number>-<process count>``; the server number
    is the stable index (the last part counts restarts of that server)."""
    parts = os.environ.get("SANIC_WORKER_NAME", "").split("-")
    if len(parts) >= 3 and parts[:2] == ["Sanic", "Server"] and parts[2].isdigit():
        return int(parts[2])
    return 0
