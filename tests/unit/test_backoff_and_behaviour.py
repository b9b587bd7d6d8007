"""The one retry policy's pauses, and the stub's configurable answers."""

from __future__ import annotations

import itertools
import random

from equipment_stub.behaviour import Answer, Behaviour
from provisioning.backoff import Backoff
from provisioning.redis_connection import RedisBackoff


def test_backoff_doubles_from_the_initial_pause_up_to_the_ceiling() -> None:
    backoff = Backoff(initial_seconds=1.0, max_seconds=8.0)
    rng = random.Random(7)
    for failed, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        pauses = [backoff.delay(failed, rng=rng) for _ in range(200)]
        assert min(pauses) >= ceiling / 2
        assert max(pauses) <= ceiling
        assert max(pauses) - min(pauses) > ceiling / 4  # jittered, not constant


def test_a_run_of_failures_pauses_as_the_policy_says_and_a_new_run_starts_over() -> None:
    backoff = Backoff(initial_seconds=1.0, max_seconds=4.0)
    first_run = list(itertools.islice(backoff.delays(rng=random.Random(3)), 5))
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(ceiling / 2 <= pause <= ceiling for pause, ceiling in zip(first_run, ceilings, strict=True))
    assert next(backoff.delays(rng=random.Random(3))) == first_run[0]


def test_redis_py_retries_a_command_with_the_same_policy() -> None:
    policy = Backoff(initial_seconds=0.05, max_seconds=0.5)
    adapted = RedisBackoff(policy)
    for failures in (1, 2, 3):
        ceiling = policy.initial_seconds * 2 ** (failures - 1)
        assert ceiling / 2 <= adapted.compute(failures) <= ceiling


def quiet(**changes: object) -> Behaviour:
    values: dict[str, object] = {
        "delay_seconds": 60.0, "jitter_seconds": 0.0, "failure_ratio": 0.0,
        "fail_ids": frozenset(), "unknown_ids": frozenset(),
    }
    values.update(changes)
    return Behaviour(**values)  # type: ignore[arg-type]


def test_the_stub_waits_exactly_its_delay_without_jitter() -> None:
    assert quiet().delay() == 60.0


def test_jitter_moves_the_delay_both_ways_but_never_below_zero() -> None:
    behaviour = quiet(delay_seconds=1.0, jitter_seconds=2.0)
    delays = [behaviour.delay(random.Random(seed)) for seed in range(300)]
    assert min(delays) == 0.0
    assert max(delays) > 2.5


def test_configured_ids_always_fail_or_are_always_unknown() -> None:
    behaviour = quiet(fail_ids=frozenset({"FAIL01"}), unknown_ids=frozenset({"GHOST1"}))
    assert behaviour.answer("FAIL01") is Answer.FAILURE
    assert behaviour.answer("GHOST1") is Answer.UNKNOWN_EQUIPMENT
    assert not behaviour.knows("GHOST1")
    assert behaviour.answer("ABC123") is Answer.SUCCESS


def test_the_failure_ratio_fails_about_that_share_of_calls() -> None:
    behaviour = quiet(failure_ratio=0.25)
    rng = random.Random(1)
    failures = sum(behaviour.answer("ABC123", rng) is Answer.FAILURE for _ in range(4000))
    assert 850 < failures < 1150


def test_a_behaviour_change_applies_only_the_fields_it_names() -> None:
    from equipment_stub.behaviour import behaviour_to_document, behaviour_with_changes

    changed = behaviour_with_changes(quiet(), {"failureRatio": 0.5, "failIds": ["X12345"]})
    assert behaviour_to_document(changed) == {
        "delaySeconds": 60.0, "jitterSeconds": 0.0, "failureRatio": 0.5,
        "failIds": ["X12345"], "unknownIds": [],
    }


def test_an_invalid_behaviour_change_says_which_field_is_wrong() -> None:
    import pytest

    from equipment_stub.behaviour import behaviour_with_changes

    for changes, message in [
        ({"delaySeconds": -1}, "delaySeconds must be a number from 0 to 3600"),
        ({"failureRatio": 2}, "failureRatio must be a number from 0 to 1"),
        ({"failIds": "X12345"}, "failIds must be a list of at most 10000 equipment ids"),
        ({"colour": "red"}, 'unknown fields: "colour"'),
        ([], "the behaviour must be a JSON object"),
    ]:
        with pytest.raises(ValueError, match=message):
            behaviour_with_changes(quiet(), changes)


def test_every_stub_process_follows_a_change_written_by_another(tmp_path: object) -> None:
    from pathlib import Path

    from equipment_stub.control import BehaviourControl

    path = Path(str(tmp_path)) / "behaviour.json"
    writer, reader = BehaviourControl(quiet(), path), BehaviourControl(quiet(), path)
    writer.change({"delaySeconds": 2.5})
    reader.refresh()
    assert reader.current.delay_seconds == 2.5
