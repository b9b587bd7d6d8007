"""``python -m provisioning.api``: serve Service B over HTTPS with ``API_WORKERS`` processes."""

from __future__ import annotations

from functools import partial

from ..serving import serve_https
from ..settings import ApiSettings
from .app import create_app


def main() -> None:
    settings = ApiSettings.from_env()
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
