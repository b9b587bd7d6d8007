"""``python -m provisioning.worker``: run the worker pool (``WORKER_PROCESSES`` processes)."""

from __future__ import annotations

import sys

from ..settings import WorkerSettings
from .pool import main_pool


def main() -> None:
    sys.exit(main_pool(WorkerSettings.from_env()))


if __name__ == "__main__":
    main()
