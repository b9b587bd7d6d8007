"""Progress of long runs: each client process writes its counts to a small file of its own now
and then (no extra load on the platform), and the benchmark sums them into a progress line."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .jobs import ClientResult
from .waiters import REQUESTS


def write_progress(path: str, result: ClientResult) -> None:
    """This client's counts so far, replacing the last ones at once (nothing when no path)."""
    if not path:
        return
    requests = result.wait_errors[REQUESTS]
    counts = {"created": len(result.tasks), "noticed": len(result.notices), "wait_requests": requests,
              "wait_errors": sum(result.wait_errors.values()) - requests}
    partial = f"{path}.partial"
    Path(partial).write_text(json.dumps(counts))
    os.replace(partial, path)


def read_progress(folder: Path) -> Counter[str]:
    """The counts of every client that wrote some in ``folder``, summed."""
    total: Counter[str] = Counter()
    for path in sorted(folder.glob("*.json")):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now: the next line will have it
    return total
