"""Every bound on what a caller sends the stub, in one place.

The README's "Service A stub" section and the OpenAPI document state them; the tests
(``tests/unit/test_stub_admin_bounds.py``, ``tests/e2e/test_stub_admin_bounds.py``) enforce them.
A caller past a bound gets a 400 (413 for the body) that names it, and nothing changes.
"""

from __future__ import annotations

import re

# delaySeconds and jitterSeconds, and the delay of any one call (jitter included). The app's
# response timeout sits a minute above it, so a call at the bound still gets its answer.
MAX_SECONDS = 3600
# failIds and unknownIds: each lists at most this many ids.
MAX_LISTED_IDS = 10_000
# An equipment id: letters and digits, at least six (the contract), at most 256 (the stub's
# bound; Service B's ids must fit in it).
EQUIPMENT_ID_MIN_LENGTH = 6
EQUIPMENT_ID_MAX_LENGTH = 256
EQUIPMENT_ID = re.compile(rf"[a-zA-Z0-9]{{{EQUIPMENT_ID_MIN_LENGTH},{EQUIPMENT_ID_MAX_LENGTH}}}")
EQUIPMENT_ID_SHAPE = f"{EQUIPMENT_ID_MIN_LENGTH} to {EQUIPMENT_ID_MAX_LENGTH} letters and digits"
# An integer literal in a body: far above any value a field takes, far below the interpreter's
# conversion limit (4,300 digits), so the stub's own message answers, never the interpreter's.
MAX_INTEGER_DIGITS = 100
# Every request body, app-wide (STUB_MAX_BODY_BYTES). The worker re-encodes a task's body with
# \u escapes (up to 6 bytes for one), so this fits the largest body Service B accepts by default
# (API_MAX_BODY_BYTES, 64 KiB) with room to spare, and a list of MAX_LISTED_IDS short ids.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# How much of a caller's text a refusal quotes back.
QUOTED_CHARACTERS = 40
