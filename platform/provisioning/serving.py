"""Serve a Sanic application factory over HTTPS with one or several worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable

from sanic import Sanic
from sanic.worker.loader import AppLoader

from .settings import TlsSettings
from .tls import server_tls


def serve_https(
    factory: Callable[[], Sanic],  # type: ignore[type-arg]
    *,
    host: str,
    port: int,
    workers: int,
    tls: TlsSettings,
    backlog: int = 1024,
) -> None:
    """Blocks until the server stops (SIGTERM or SIGINT: graceful).

    With one worker the server runs in this process: no manager process, and none of the
    manager's start-up race (Sanic 25.12 spins in ``wait_for_ack`` when SIGTERM arrives right
    after a worker's ack). With several, Sanic's manager spawns them, each building its own
    app from ``factory`` (which must therefore be picklable).
    """
    loader = AppLoader(factory=factory)
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
        single_process=single,
    )
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
