"""How the stub answers: its delay, jitter and injected faults. Pure, so it is unit-tested."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace


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
        """The configured delay, moved up or down by at most the jitter, never below zero."""
        if not self.jitter_seconds:
            return self.delay_seconds
        offset = (rng or random).uniform(-self.jitter_seconds, self.jitter_seconds)
        return max(self.delay_seconds + offset, 0.0)

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


def behaviour_with_changes(behaviour: Behaviour, changes: object) -> Behaviour:
    """Apply a partial document to a behaviour; ``ValueError`` says which field is wrong."""
    if not isinstance(changes, dict):
        raise ValueError("the behaviour must be a JSON object")
    unknown = set(changes) - set(behaviour_to_document(behaviour))
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    values: dict[str, object] = {}
    for field_name, attribute in (("delaySeconds", "delay_seconds"), ("jitterSeconds", "jitter_seconds"),
                                  ("failureRatio", "failure_ratio")):
        if field_name in changes:
            value = changes[field_name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{field_name} must be a number of at least 0")
            if field_name == "failureRatio" and value > 1:
                raise ValueError("failureRatio must be between 0 and 1")
            values[attribute] = float(value)
    for field_name, attribute in (("failIds", "fail_ids"), ("unknownIds", "unknown_ids")):
        if field_name in changes:
            ids = changes[field_name]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"{field_name} must be a list of strings")
            values[attribute] = frozenset(ids)
    return replace(behaviour, **values)  # type: ignore[arg-type]
