"""The stub's bounds on what a caller sends it: strict JSON, finite and bounded behaviour values,
bounded id lists and ids, the same bounds for its environment, and a refusal changes nothing."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from equipment_stub import strict_json
from equipment_stub.answers import InvalidBody, UnknownEquipment
from equipment_stub.behaviour import (
    Behaviour,
    behaviour_summary,
    behaviour_to_document,
    behaviour_with_changes,
)
from equipment_stub.control import BehaviourControl, write_behaviour
from equipment_stub.limits import DEFAULT_MAX_BODY_BYTES, EQUIPMENT_ID_MAX_LENGTH, MAX_LISTED_IDS, MAX_SECONDS
from equipment_stub.request_body import check_equipment_id, decode_json
from equipment_stub.settings import StubSettings
from provisioning.errors import SettingsError

LONGEST_ID = "A" * EQUIPMENT_ID_MAX_LENGTH
TOO_LONG_ID = "A" * (EQUIPMENT_ID_MAX_LENGTH + 1)


def quiet(**changes: object) -> Behaviour:
    values: dict[str, object] = {
        "delay_seconds": 60.0, "jitter_seconds": 0.0, "failure_ratio": 0.0,
        "fail_ids": frozenset(), "unknown_ids": frozenset(),
    }
    values.update(changes)
    return Behaviour(**values)  # type: ignore[arg-type]


# -- strict JSON ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "message"), [
    ('{"delaySeconds": NaN}', "NaN is not a JSON number"),
    ('{"jitterSeconds": Infinity}', "Infinity is not a JSON number"),
    ('[-Infinity]', "-Infinity is not a JSON number"),
    ('{"delaySeconds": 1e400}', 'the number "1e400" is too large'),
    ('{"delaySeconds": -1e400}', 'the number "-1e400" is too large'),
    ('{"delaySeconds": ' + "9" * 101 + "}", "an integer has more than 100 digits"),
    ('{"n": -' + "9" * 5000 + "}", "an integer has more than 100 digits"),
    ('{"delaySeconds": 1, "delaySeconds": 2}', 'the name "delaySeconds" appears twice in an object'),
    ('{"a": {"b": 1, "b": 1}}', 'the name "b" appears twice in an object'),
    ("[" * 100_000, "it is nested too deeply"),
], ids=["nan", "infinity", "minus-infinity", "float-overflow", "negative-float-overflow",
        "101-digit-integer", "5000-digit-integer", "duplicate-name", "nested-duplicate-name", "deep"])
def test_what_python_json_tolerates_is_refused_with_the_stubs_own_message(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        strict_json.loads(raw)
    assert str(refused.value) == message


def test_strict_json_reads_ordinary_json_as_python_json_does() -> None:
    raw = '{"a": [1, -2.5, 1e-400, "x", true, null, {"b": ' + "9" * 100 + "}], \"c\": {}}"
    assert strict_json.loads(raw) == json.loads(raw)


def test_a_long_name_is_quoted_back_cut_short() -> None:
    name = "x" * 10_000
    with pytest.raises(ValueError) as refused:
        strict_json.loads(f'{{"{name}": 1, "{name}": 2}}')
    assert len(str(refused.value)) < 100
    assert "xxxx…" in str(refused.value)


def test_the_interpreter_never_speaks_in_a_refusal() -> None:
    with pytest.raises(InvalidBody) as refused:
        decode_json(b'{"timeoutInSeconds": ' + b"1" * 5000 + b"}")
    assert "sys." not in refused.value.message
    assert refused.value.message == "the body is not valid JSON: an integer has more than 100 digits"


# -- the behaviour's bounds ----------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"delaySeconds": float("nan")}, "delaySeconds must be a number from 0 to 3600"),
    ({"jitterSeconds": float("inf")}, "jitterSeconds must be a number from 0 to 3600"),
    ({"failureRatio": float("nan")}, "failureRatio must be a number from 0 to 1"),
    ({"delaySeconds": 1e300}, "delaySeconds must be a number from 0 to 3600"),
    ({"delaySeconds": 1e9}, "delaySeconds must be a number from 0 to 3600"),
    ({"delaySeconds": 10 ** 400}, "delaySeconds must be a number from 0 to 3600"),
    ({"jitterSeconds": 3600.001}, "jitterSeconds must be a number from 0 to 3600"),
    ({"delaySeconds": -0.001}, "delaySeconds must be a number from 0 to 3600"),
    ({"delaySeconds": True}, "delaySeconds must be a number from 0 to 3600"),
    ({"delaySeconds": "5"}, "delaySeconds must be a number from 0 to 3600"),
    ({"failureRatio": 1.0001}, "failureRatio must be a number from 0 to 1"),
    ({"failIds": [f"ID{n:08d}" for n in range(MAX_LISTED_IDS + 1)]},
     "failIds must be a list of at most 10000 equipment ids"),
    ({"unknownIds": [TOO_LONG_ID]}, "unknownIds must list equipment ids (6 to 256 letters and digits): "
                                    '"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA…" is not one'),
    ({"failIds": ["ab-1"]}, 'failIds must list equipment ids (6 to 256 letters and digits): "ab-1" is not one'),
    ({"failIds": [123456]}, "failIds must list equipment ids (6 to 256 letters and digits): "
                            "an item that is not a string is not one"),
    ({"failIds": {"ABC123": True}}, "failIds must be a list of at most 10000 equipment ids"),
], ids=["nan-delay", "infinite-jitter", "nan-ratio", "1e300-delay", "1e9-delay", "400-digit-delay",
        "jitter-past-bound", "negative-delay", "boolean", "text", "ratio-past-one", "10001-ids",
        "too-long-id", "malformed-id", "number-id", "object-not-list"])
def test_a_value_past_its_bound_is_refused_naming_the_field_and_the_bound(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as refused:
        behaviour_with_changes(quiet(), changes)
    assert str(refused.value) == message


def test_the_bounds_themselves_are_accepted() -> None:
    ids = [f"ID{n:08d}" for n in range(MAX_LISTED_IDS)]
    changed = behaviour_with_changes(quiet(), {
        "delaySeconds": MAX_SECONDS, "jitterSeconds": 0, "failureRatio": 1,
        "failIds": ids, "unknownIds": [LONGEST_ID, "ABC123"],
    })
    assert (changed.delay_seconds, changed.jitter_seconds, changed.failure_ratio) == (3600.0, 0.0, 1.0)
    assert len(changed.fail_ids) == MAX_LISTED_IDS
    assert changed.unknown_ids == {LONGEST_ID, "ABC123"}


def test_many_unknown_fields_are_named_a_few_at_a_time() -> None:
    with pytest.raises(ValueError) as refused:
        behaviour_with_changes(quiet(), {f"field{n:05d}": n for n in range(10_000)})
    assert str(refused.value) == (
        'unknown fields: "field00000", "field00001", "field00002", "field00003", "field00004", … '
        "(known: delaySeconds, jitterSeconds, failureRatio, failIds, unknownIds)"
    )


def test_jitter_never_takes_a_call_past_the_longest_delay() -> None:
    behaviour = quiet(delay_seconds=MAX_SECONDS, jitter_seconds=MAX_SECONDS)
    delays = [behaviour.delay(random.Random(seed)) for seed in range(300)]
    assert max(delays) == MAX_SECONDS
    assert min(delays) < MAX_SECONDS / 2  # still jittered, downwards


def test_the_behaviour_document_is_always_json() -> None:
    changed = behaviour_with_changes(quiet(), {"delaySeconds": 0.1, "jitterSeconds": MAX_SECONDS})
    document = behaviour_to_document(changed)
    assert strict_json.loads(json.dumps(document, allow_nan=False)) == document


def test_a_log_line_counts_the_ids_instead_of_listing_them() -> None:
    ids = [f"ID{n:08d}" for n in range(MAX_LISTED_IDS)]
    summary = behaviour_summary(behaviour_with_changes(quiet(), {"failIds": ids}))
    assert summary == {"delaySeconds": 60.0, "jitterSeconds": 0.0, "failureRatio": 0.0,
                       "failIds": MAX_LISTED_IDS, "unknownIds": 0}


# -- a refusal changes nothing -------------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {"delaySeconds": 1, "jitterSeconds": float("nan")},
    {"failureRatio": 0.5, "failIds": [TOO_LONG_ID]},
    {"delaySeconds": 2, "colour": "red"},
], ids=["nan-after-a-valid-field", "bad-id-after-a-valid-field", "unknown-field"])
def test_a_refused_change_leaves_the_behaviour_and_its_file_as_they_were(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    path = tmp_path / "behaviour.json"
    write_behaviour(path, quiet())
    before = path.read_bytes()
    control = BehaviourControl(quiet(), path)
    with pytest.raises(ValueError):
        control.change(changes)
    assert control.current == quiet()
    assert path.read_bytes() == before


def test_a_shared_file_with_values_past_the_bounds_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "behaviour.json"
    path.write_text('{"delaySeconds": NaN, "jitterSeconds": 1e300}')  # as an older stub wrote it
    control = BehaviourControl(quiet(delay_seconds=2.0), path)
    control.refresh()
    assert control.current == quiet(delay_seconds=2.0)


# -- equipment ids -------------------------------------------------------------------------------

def test_an_equipment_id_has_at_most_256_characters() -> None:
    check_equipment_id(LONGEST_ID)  # known: raises nothing
    with pytest.raises(UnknownEquipment):
        check_equipment_id(TOO_LONG_ID)


# -- the environment's behaviour has the same bounds ---------------------------------------------

@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("STUB_DELAY_SECONDS", "nan", "STUB_DELAY_SECONDS must be a finite number, got 'nan'"),
    ("STUB_DELAY_SECONDS", "1e9", "STUB_DELAY_SECONDS must be a number from 0 to 3600, got 1000000000.0"),
    ("STUB_JITTER_SECONDS", "inf", "STUB_JITTER_SECONDS must be a finite number, got 'inf'"),
    ("STUB_FAILURE_RATIO", "nan", "STUB_FAILURE_RATIO must be a finite number, got 'nan'"),
    ("STUB_FAIL_IDS", f"ABC123,{TOO_LONG_ID}", "STUB_FAIL_IDS must list equipment ids"),
    ("STUB_UNKNOWN_IDS", "ab-1", 'STUB_UNKNOWN_IDS must list equipment ids (6 to 256 letters and digits): '
                                 '"ab-1" is not one'),
    ("STUB_MAX_BODY_BYTES", "1023", "STUB_MAX_BODY_BYTES must be at least 1024"),
])
def test_a_stub_variable_past_its_bound_fails_at_start_naming_it(variable: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        StubSettings.from_env({variable: value})
    assert refused.value.variable == variable
    assert str(refused.value).startswith(problem)


def test_the_stub_takes_bodies_of_up_to_one_mebibyte_unless_told() -> None:
    assert StubSettings.from_env({}).max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1024 * 1024
    assert StubSettings.from_env({"STUB_MAX_BODY_BYTES": "4096"}).max_body_bytes == 4096


# -- the load test's schedule, which drives the admin route -----------------------------------------

def test_the_load_tests_stub_schedule_refuses_numbers_that_are_not_json() -> None:
    """In a process of its own: importing locust monkey-patches the standard library."""
    code = (
        "from loadkit.stub_schedule import parse_schedule\n"
        "print(parse_schedule('0 failure=0; 30s delay=2 jitter=0.5'))\n"
        "for text in ('0 delay=nan', '0 jitter=inf', '0 delay=1e999', 'nan failure=1'):\n"
        "    try:\n"
        "        parse_schedule(text)\n"
        "    except ValueError as error:\n"
        "        print(error)\n"
    )
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(str(root / source) for source in ("loadtest", "platform", "stub", "devkit"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": path}, check=True)
    assert result.stdout.splitlines() == [
        "[(0.0, {'failureRatio': 0.0}), (30.0, {'delaySeconds': 2.0, 'jitterSeconds': 0.5})]",
        "--stub-schedule: cannot read 'delay=nan' in '0 delay=nan'",
        "--stub-schedule: cannot read 'jitter=inf' in '0 jitter=inf'",
        "--stub-schedule: cannot read 'delay=1e999' in '0 delay=1e999'",
        "--stub-schedule: cannot read the time 'nan' in 'nan failure=1'",
    ]
