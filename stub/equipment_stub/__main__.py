"""``python -m equipment_stub``: serve the Service A stub over HTTPS."""

from __future__ import annotations

from functools import partial

from provisioning.serving import serve_https

from .app import create_app
from .control import write_behaviour
from .settings import StubSettings


def main() -> None:
    settings = StubSettings.from_env()
    # The environment's behaviour wins at start; admin changes are shared through this file.
    write_behaviour(settings.behaviour_file, settings.behaviour)
    serve_https(
        partial(create_app, settings),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        tls=settings.tls,
        http=settings.http,
        backlog=settings.backlog,
    )


if __name__ == "__main__":
    main()
