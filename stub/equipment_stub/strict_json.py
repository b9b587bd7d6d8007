"""Strict JSON for everything the stub reads (request bodies and its shared behaviour file).

Python's ``json`` is lenient where the standards are not: it takes ``NaN``, ``Infinity`` and
``-Infinity`` (not JSON numbers, RFC 8259 section 6), keeps the last of duplicate names
(I-JSON, RFC 7493 section 2.3: objects MUST NOT have them), reads ``1e400`` as infinity, and
parses integers up to the interpreter's 4,300-digit limit, whose error tells the caller about
``sys.set_int_max_str_digits``. Here each is a ``ValueError`` with the stub's own message.
"""

from __future__ import annotations

import json
import math

from .limits import MAX_INTEGER_DIGITS, QUOTED_CHARACTERS


def quoted(text: str) -> str:
    """A caller's text in a message: quoted, and cut to a few dozen characters."""
    if len(text) > QUOTED_CHARACTERS:
        text = text[:QUOTED_CHARACTERS] + "…"
    return json.dumps(text, ensure_ascii=False)


def loads(raw: bytes | str) -> object:
    """The document in ``raw``; ``ValueError`` saying why it is not strict JSON."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float,
                          parse_int=_bounded_int, object_pairs_hook=_unique_names)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {quoted(text)} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _unique_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ValueError(f"the name {quoted(name)} appears twice in an object")
        seen.add(name)
    return dict(pairs)
