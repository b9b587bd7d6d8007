"""The provisioning request body: what is accepted, and the precise error for what is not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from provisioning.errors import EquipmentNotFound, InvalidMessage, InvalidRequest, TaskNotFound
from provisioning.models import (
    TaskMessage,
    check_equipment_id,
    check_task_id,
    parse_json_body,
    parse_provisioning_request,
)
from provisioning.request_limits import DEFAULT_LIMITS, RequestLimits

VALID: dict[str, Any] = {
    "timeoutInSeconds": 14,
    "parameters": {"username": "admin", "password": "s3cret", "vlan": 534, "interfaces": [1, 2, 3, 4]},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()


def test_the_contract_example_is_accepted() -> None:
    request = parse_provisioning_request(VALID)
    assert request.timeout_in_seconds == 14
    assert request.parameters.interfaces == (1, 2, 3, 4)
    assert request.parameters.vlan == 534
    assert request.to_wire() == VALID


def test_vlan_is_optional() -> None:
    request = parse_provisioning_request(with_change("parameters.vlan", _DELETE))
    assert request.parameters.vlan is None
    assert "vlan" not in request.to_wire()["parameters"]


def test_unknown_fields_are_ignored_and_not_forwarded() -> None:
    body = with_change("parameters.extra", "x")
    body["other"] = 1
    assert parse_provisioning_request(body).to_wire() == VALID


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("timeoutInSeconds", _DELETE, "timeoutInSeconds is required"),
        ("timeoutInSeconds", 0, "timeoutInSeconds must be a positive integer"),
        ("timeoutInSeconds", -3, "timeoutInSeconds must be a positive integer"),
        ("timeoutInSeconds", "14", "timeoutInSeconds must be a positive integer"),
        ("timeoutInSeconds", 1.5, "timeoutInSeconds must be a positive integer"),
        ("timeoutInSeconds", True, "timeoutInSeconds must be a positive integer"),
        ("parameters", _DELETE, "parameters is required"),
        ("parameters", [], "parameters must be a JSON object"),
        ("parameters.username", _DELETE, "parameters.username is required"),
        ("parameters.username", "", "parameters.username must be a non-empty string"),
        ("parameters.password", 42, "parameters.password must be a non-empty string"),
        ("parameters.vlan", 0, "parameters.vlan must be an integer from 1 to 4094"),
        ("parameters.vlan", 4095, "parameters.vlan must be an integer from 1 to 4094"),
        ("parameters.vlan", "534", "parameters.vlan must be an integer from 1 to 4094"),
        ("parameters.interfaces", _DELETE, "parameters.interfaces is required"),
        ("parameters.interfaces", [], "parameters.interfaces must be a non-empty list of positive integers"),
        ("parameters.interfaces", "1,2", "parameters.interfaces must be a non-empty list of positive integers"),
        ("parameters.interfaces", [1, 0], "parameters.interfaces[1] must be a positive integer"),
        ("parameters.interfaces", [1, "2"], "parameters.interfaces[1] must be a positive integer"),
    ],
)
def test_an_invalid_field_is_named_with_the_reason(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_provisioning_request(with_change(path, value))
    assert caught.value.message == message
    assert caught.value.status == 400


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="Request body must be a JSON object"):
        parse_provisioning_request(body)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Request body is empty; a JSON object is expected"),
        (b"{bad", "Request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"\xff\xfe", "Request body is not valid UTF-8"),
    ],
)
def test_a_body_that_is_not_json_says_why(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_body(raw)
    assert caught.value.message == message


def test_credentials_stay_out_of_the_representation() -> None:
    assert "s3cret" not in repr(parse_provisioning_request(VALID))
    assert "admin" not in repr(parse_provisioning_request(VALID))


@pytest.mark.parametrize("equipment_id", ["abcdef", "ABC123xyz", "0123456789" * 5])
def test_equipment_ids_of_six_or_more_letters_and_digits_are_accepted(equipment_id: str) -> None:
    assert check_equipment_id(equipment_id) == equipment_id


@pytest.mark.parametrize("equipment_id", ["abc12", "abc-123", "abc 1234", "ÄBCDEF1", "abcdef\n", ""])
def test_other_equipment_ids_are_not_found(equipment_id: str) -> None:
    with pytest.raises(EquipmentNotFound) as caught:
        check_equipment_id(equipment_id)
    assert caught.value.message == "The requested equipment is not found"


def test_task_ids_must_be_uuids() -> None:
    task_id = "0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44"
    assert check_task_id(task_id) == task_id
    assert check_task_id(task_id.upper()) == task_id
    for bad in ["42", "not-a-uuid", task_id.replace("-", ""), "{" + task_id + "}"]:
        with pytest.raises(TaskNotFound):
            check_task_id(bad)


def test_a_body_nested_too_deeply_is_refused_with_400() -> None:
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        parse_json_body(b"[" * 100_000 + b"]" * 100_000)


def refusal(raw: bytes, limits: RequestLimits = DEFAULT_LIMITS) -> str:
    """The message a create's raw body is refused with."""
    with pytest.raises(InvalidRequest) as caught:
        parse_provisioning_request(parse_json_body(raw), limits)
    assert caught.value.status == 400
    return caught.value.message


def raw_body(timeout: str = "14", interfaces: str = "[1, 2]", vlan: str = "534",
             extra: str = "") -> bytes:
    """A create body with these JSON literals spliced in, exactly as a client wrote them."""
    return (f'{{"timeoutInSeconds": {timeout}, {extra}"parameters": {{"username": "admin", '
            f'"password": "s3cret", "vlan": {vlan}, "interfaces": {interfaces}}}}}').encode()


# -- bounds (ApiSettings.request_limits): a 400 naming the field and the bound ---------------

@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("timeoutInSeconds", 3601, "timeoutInSeconds must be at most 3600"),
        ("parameters.interfaces", [1, 2_147_483_648],
         "parameters.interfaces[1] must be at most 2147483647"),
        ("parameters.interfaces", [1] * 1025, "parameters.interfaces must have at most 1024 entries"),
        ("parameters.username", "u" * 257, "parameters.username must be at most 256 characters long"),
        ("parameters.password", "p" * 257, "parameters.password must be at most 256 characters long"),
    ],
)
def test_a_value_past_a_default_bound_is_refused_naming_the_bound(path: str, value: Any,
                                                                   message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_provisioning_request(with_change(path, value))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("timeoutInSeconds", 3600),
        ("parameters.interfaces", [2_147_483_647]),
        ("parameters.interfaces", list(range(1, 1025))),
        ("parameters.username", "u" * 256),
        ("parameters.password", "p" * 256),
    ],
)
def test_a_value_at_a_default_bound_is_accepted(path: str, value: Any) -> None:
    parse_provisioning_request(with_change(path, value))


def test_the_bounds_are_the_settings_given() -> None:
    limits = RequestLimits(max_timeout_seconds=60, max_interfaces=2, max_interface_number=48,
                           max_credential_length=6)
    assert parse_provisioning_request(parse_json_body(raw_body(timeout="60", interfaces="[1, 48]")),
                                      limits)
    assert refusal(raw_body(timeout="61"), limits) == "timeoutInSeconds must be at most 60"
    assert refusal(raw_body(interfaces="[1, 49]"), limits) == (
        "parameters.interfaces[1] must be at most 48")
    assert refusal(raw_body(interfaces="[1, 2, 3]"), limits) == (
        "parameters.interfaces must have at most 2 entries")
    shorter = RequestLimits(max_credential_length=5)
    assert refusal(raw_body(), shorter) == "parameters.password must be at most 5 characters long"


# -- numbers: checked before they are converted, integers as JSON Schema has them -------------

@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        ("1" * 400, "timeoutInSeconds must be at most 3600"),
        ("1" * 5000, "timeoutInSeconds must be at most 3600"),  # past the 4,300-digit limit
        ("-" + "1" * 5000, "timeoutInSeconds must be a positive integer"),
        ("1e400", "timeoutInSeconds must be at most 3600"),
        ("1e999999999999999999999", "timeoutInSeconds must be at most 3600"),
        ("-1e400", "timeoutInSeconds must be a positive integer"),
        ("1e-400", "timeoutInSeconds must be a positive integer"),
        ("1.5", "timeoutInSeconds must be a positive integer"),
        ("14.000000000000000000001", "timeoutInSeconds must be a positive integer"),
        ("0.0", "timeoutInSeconds must be a positive integer"),
    ],
)
def test_a_number_of_any_length_or_exponent_gets_the_fields_own_message(timeout: str,
                                                                         message: str) -> None:
    assert refusal(raw_body(timeout=timeout)) == message


def test_an_interface_of_four_thousand_digits_is_refused_naming_its_bound() -> None:
    assert refusal(raw_body(interfaces=f"[1, {'9' * 4000}]")) == (
        "parameters.interfaces[1] must be at most 2147483647")


@pytest.mark.parametrize(
    ("timeout", "interfaces", "vlan", "expected"),
    [
        ("14.0", "[81421.0, 2]", "534.0", (14, (81421, 2), 534)),
        ("1e3", "[1E1, 2e+0]", "5.34e2", (1000, (10, 2), 534)),
        ("14", "[1, 2]", "534", (14, (1, 2), 534)),
    ],
)
def test_an_integral_number_is_that_integer_however_it_is_written(
    timeout: str, interfaces: str, vlan: str, expected: tuple[int, tuple[int, ...], int]
) -> None:
    request = parse_provisioning_request(
        parse_json_body(raw_body(timeout=timeout, interfaces=interfaces, vlan=vlan)))
    parameters = request.parameters
    assert (request.timeout_in_seconds, parameters.interfaces, parameters.vlan) == expected
    numbers = [request.timeout_in_seconds, *parameters.interfaces, parameters.vlan]
    assert all(type(number) is int for number in numbers)


def test_an_integral_number_is_queued_and_forwarded_as_an_integer() -> None:
    request = parse_provisioning_request(parse_json_body(raw_body(interfaces="[81421.0]")))
    message = TaskMessage("0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44", "ABC123", request, 1.0).encode()
    assert b'"interfaces":[81421]' in message
    assert TaskMessage.decode(message).request.to_wire() == request.to_wire()


def test_a_vlan_with_a_fraction_is_refused() -> None:
    assert refusal(raw_body(vlan="534.5")) == "parameters.vlan must be an integer from 1 to 4094"


def test_a_huge_number_in_an_ignored_field_is_ignored() -> None:
    raw = raw_body(interfaces="[1, 2, 3, 4]", extra=f'"other": {"7" * 5000}, ')
    assert parse_provisioning_request(parse_json_body(raw)).to_wire() == VALID


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_numbers(constant: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_body(raw_body(timeout=constant))
    assert caught.value.message == f"Request body is not valid JSON: {constant} is not a JSON number"


# -- duplicate keys: refused at any depth, naming the key -------------------------------------

@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"timeoutInSeconds": -5, "timeoutInSeconds": 1, "parameters": {}}', '"timeoutInSeconds"'),
        (raw_body(vlan='534, "vlan": 535'), '"vlan"'),
        (raw_body(extra='"other": [{"a": 1, "a": 1}], '), '"a"'),
        (b'{"\\u0000x": 1, "\\u0000x": 2}', '"\\u0000x"'),
    ],
)
def test_a_key_given_twice_in_one_object_is_refused_naming_it(raw: bytes, key: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_body(raw)
    assert caught.value.message == f"Request body has the key {key} more than once in one object"


def test_a_long_duplicate_key_is_named_cut_short() -> None:
    key = "k" * 10_000
    with pytest.raises(InvalidRequest) as caught:
        parse_json_body(f'{{"{key}": 1, "{key}": 1}}'.encode())
    assert caught.value.message == (
        f'Request body has the key "{"k" * 59}..." more than once in one object')


def test_the_same_key_in_two_objects_is_no_duplicate() -> None:
    document = parse_json_body(b'{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}')
    assert document == {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}


# -- equipment ids: at most 128 characters, a longer one is the classic "not found" ------------

def test_an_equipment_id_of_128_characters_is_accepted_and_a_longer_one_is_not_found() -> None:
    assert check_equipment_id("A" * 128) == "A" * 128
    with pytest.raises(EquipmentNotFound):
        check_equipment_id("A" * 129)


# -- the worker's side: a task queued under raised bounds is still a task ---------------------

def test_a_task_message_is_not_held_to_the_default_bounds() -> None:
    raised = RequestLimits(max_interfaces=5000)
    request = parse_provisioning_request(with_change("parameters.interfaces", [1] * 2000), raised)
    message = TaskMessage("0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44", "ABC123", request, 1.0)
    assert TaskMessage.decode(message.encode()).request == request


def test_a_task_message_is_still_held_to_the_shape() -> None:
    body = with_change("parameters.interfaces", [1, 0])
    raw = (b'{"taskId": "0b5e3b0e-8a3c-4f7d-9d1e-2f6b9c1a7e44", "equipmentId": "ABC123", '
           b'"createdAt": 1.0, "request": ' + json.dumps(body).encode() + b"}")
    with pytest.raises(InvalidMessage, match=r"interfaces\[1\] must be a positive integer"):
        TaskMessage.decode(raw)
