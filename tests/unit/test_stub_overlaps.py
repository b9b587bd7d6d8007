"""The stub's count of overlapping calls for one equipment id (what the fault tests read)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from equipment_stub.metrics import CallsInProgress


def overlaps_after(steps: str) -> float | None:
    """Play ``steps`` ("+ID" a call for ID begins, "-ID" one ends); the overlaps counted."""
    registry = CollectorRegistry()
    calls = CallsInProgress(Counter("overlaps", "test", registry=registry))
    for step in steps.split():
        (calls.begin if step[0] == "+" else calls.end)(step[1:])
    return registry.get_sample_value("overlaps_total")


def test_a_call_that_starts_while_one_for_the_same_id_is_in_progress_is_an_overlap() -> None:
    assert overlaps_after("+ABC123 +ABC123 +ABC123") == 2


def test_calls_one_after_another_or_for_other_ids_do_not_overlap() -> None:
    assert overlaps_after("+ABC123 +XYZ789 -ABC123 +ABC123 -ABC123 -XYZ789") == 0


def test_an_id_is_free_again_once_its_last_call_ended() -> None:
    assert overlaps_after("+ABC123 +ABC123 -ABC123 -ABC123 +ABC123") == 1
