"""The stub's behaviour, changeable at run time and shared by all of its worker processes.

The behaviour lives in a small JSON file (``STUB_BEHAVIOUR_FILE``). The main process writes
it at start from the environment; each worker process reads it and follows changes (polling
its modification time), and ``PUT /admin/behaviour`` rewrites it atomically. So a load run can
switch faults on and off mid-run, and every stub process follows within ``POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path

from . import strict_json
from .behaviour import Behaviour, behaviour_summary, behaviour_to_document, behaviour_with_changes

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


def write_behaviour(path: Path, behaviour: Behaviour) -> None:
    """Replace the file in one step, so that a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".behaviour-")
    with os.fdopen(descriptor, "w") as handle:
        json.dump(behaviour_to_document(behaviour), handle, allow_nan=False)
    os.replace(temporary, path)


class BehaviourControl:
    """This process's view of the shared behaviour."""

    def __init__(self, initial: Behaviour, path: Path) -> None:
        self.current = initial
        self._path = path
        self._seen_mtime = 0.0

    def change(self, changes: object) -> Behaviour:
        """Apply a partial change and share it with the others; an invalid change raises
        ``ValueError`` before anything is written, so it changes nothing."""
        updated = behaviour_with_changes(self.current, changes)
        write_behaviour(self._path, updated)
        self.current = updated
        log.info("stub behaviour changed", extra={"behaviour": behaviour_summary(updated)})
        return updated

    def refresh(self) -> None:
        """Reload the file if another process changed it since the last look."""
        try:
            mtime = self._path.stat().st_mtime
            if mtime == self._seen_mtime:
                return
            document = strict_json.loads(self._path.read_bytes())
            self.current = behaviour_with_changes(self.current, document)
            self._seen_mtime = mtime
        except (OSError, ValueError) as error:
            log.warning("cannot read the stub behaviour file %s: %s", self._path, error)

    async def follow(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(POLL_SECONDS)
