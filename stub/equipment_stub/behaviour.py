"""How the stub answers: its delay, jitter and injected faults. Pure, so it is unit-tested.

Every behaviour the stub builds is within the bounds of ``limits``, wherever it came from (the
environment, ``PUT /admin/behaviour``, the shared file): finite, so its document is JSON.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeGuard

from .limits import EQUIPMENT_ID, EQUIPMENT_ID_SHAPE, MAX_LISTED_IDS, MAX_SECONDS
from .strict_json import quoted


class Answer(enum.Enum):
    SUCCESS = 200
    UNKNOWN_EQUIPMENT = 404
    FAILURE = 500


@dataclass(frozen=True, slots=True)
class Behaviour:
    delay_seconds: float
    jitter_seconds: float
    failure_ratio: float
    fail_ids: frozenset[str]
    unknown_ids: frozenset[str]

    def delay(self, rng: random.Random | None = None) -> float:
        """The configured delay, moved up or down by at most the jitter, never below zero nor
        above ``MAX_SECONDS``."""
        if not self.jitter_seconds:
            return self.delay_seconds
        offset = (rng or random).uniform(-self.jitter_seconds, self.jitter_seconds)
        return min(max(self.delay_seconds + offset, 0.0), MAX_SECONDS)

    def knows(self, equipment_id: str) -> bool:
        return equipment_id not in self.unknown_ids

    def answer(self, equipment_id: str, rng: random.Random | None = None) -> Answer:
        """What to answer once the delay is over."""
        if not self.knows(equipment_id):
            return Answer.UNKNOWN_EQUIPMENT
        if equipment_id in self.fail_ids:
            return Answer.FAILURE
        if self.failure_ratio and (rng or random).random() < self.failure_ratio:
            return Answer.FAILURE
        return Answer.SUCCESS


def behaviour_to_document(behaviour: Behaviour) -> dict[str, object]:
    """The admin endpoint's and the shared file's JSON shape."""
    return {
        "delaySeconds": behaviour.delay_seconds,
        "jitterSeconds": behaviour.jitter_seconds,
        "failureRatio": behaviour.failure_ratio,
        "failIds": sorted(behaviour.fail_ids),
        "unknownIds": sorted(behaviour.unknown_ids),
    }


def behaviour_summary(behaviour: Behaviour) -> dict[str, object]:
    """The document for a log line: the id lists by their length (up to 10,000 ids each)."""
    return {**behaviour_to_document(behaviour),
            "failIds": len(behaviour.fail_ids), "unknownIds": len(behaviour.unknown_ids)}


def seconds(value: object) -> float:
    """A delay or a jitter; ``ValueError`` saying what it must be."""
    if _is_number(value) and 0 <= value <= MAX_SECONDS:  # NaN compares false: refused
        return float(value)
    raise ValueError(f"must be a number from 0 to {MAX_SECONDS}")


def ratio(value: object) -> float:
    """A share of calls; ``ValueError`` saying what it must be."""
    if _is_number(value) and 0 <= value <= 1:
        return float(value)
    raise ValueError("must be a number from 0 to 1")


def equipment_ids(value: object) -> frozenset[str]:
    """A list of ids; ``ValueError`` saying what it must be, and which id is not one."""
    if not isinstance(value, list | tuple | frozenset) or len(value) > MAX_LISTED_IDS:
        raise ValueError(f"must be a list of at most {MAX_LISTED_IDS} equipment ids")
    for item in value:
        if not isinstance(item, str) or EQUIPMENT_ID.fullmatch(item) is None:
            shown = quoted(item) if isinstance(item, str) else "an item that is not a string"
            raise ValueError(f"must list equipment ids ({EQUIPMENT_ID_SHAPE}): {shown} is not one")
    return frozenset(value)


# Each field of the JSON document: its attribute, and what reads (and bounds) its value.
FIELDS: dict[str, tuple[str, Callable[[object], object]]] = {
    "delaySeconds": ("delay_seconds", seconds),
    "jitterSeconds": ("jitter_seconds", seconds),
    "failureRatio": ("failure_ratio", ratio),
    "failIds": ("fail_ids", equipment_ids),
    "unknownIds": ("unknown_ids", equipment_ids),
}


def behaviour_with_changes(behaviour: Behaviour, changes: object) -> Behaviour:
    """Apply a partial document to a behaviour; ``ValueError`` says which field is wrong."""
    if not isinstance(changes, dict):
        raise ValueError("the behaviour must be a JSON object")
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        shown = ", ".join(map(quoted, unknown[:5])) + (", …" if len(unknown) > 5 else "")
        raise ValueError(f"unknown fields: {shown} (known: {', '.join(FIELDS)})")
    values: dict[str, object] = {}
    for field_name, value in changes.items():
        attribute, read = FIELDS[field_name]
        try:
            values[attribute] = read(value)
        except ValueError as error:
            raise ValueError(f"{field_name} {error}") from None
    return replace(behaviour, **values)  # type: ignore[arg-type]


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
