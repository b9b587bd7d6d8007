"""The provisioning request body: what is accepted, and the precise error for what is not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from provisioning.errors import EquipmentNotFound, InvalidRequest, TaskNotFound
from provisioning.models import (
    check_equipment_id,
    check_task_id,
    parse_json_body,
    parse_provisioning_request,
)

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


def test_a_number_too_long_to_convert_is_refused_with_400() -> None:
    with pytest.raises(InvalidRequest, match="Request body is not valid JSON"):
        parse_json_body(b'{"timeoutInSeconds": ' + b"1" * 5000 + b"}")
