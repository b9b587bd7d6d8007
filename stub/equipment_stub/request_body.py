"""What the stub accepts: its own reading of the README's request body and equipment ids.

A real Service A checks what it is sent by its own rules, so the stub does too instead of
running Service B's parser: a body the worker sends that a Service A would refuse then shows up
(the contract test sends the worker's bodies here). The messages are the stub's own; the
worker's client reads only the status. Unknown fields are ignored, as the contract says.
A body is read as strict JSON (``strict_json``): no NaN or Infinity, no duplicate names, no
integer of more than ``MAX_INTEGER_DIGITS`` digits; none of these is a body a worker sends.
"""

from __future__ import annotations

from . import strict_json
from .answers import InvalidBody, UnknownEquipment
from .limits import EQUIPMENT_ID

HIGHEST_VLAN = 4094


def check_equipment_id(equipment_id: str) -> None:
    """Letters and digits, 6 to 256; anything else is an unknown equipment."""
    if EQUIPMENT_ID.fullmatch(equipment_id) is None:
        raise UnknownEquipment()


def decode_json(raw: bytes) -> object:
    """The body as strict JSON, or ``InvalidBody`` saying why it is not."""
    try:
        return strict_json.loads(raw)
    except ValueError as error:  # incl. UnicodeDecodeError, JSONDecodeError
        raise InvalidBody(f"the body is not valid JSON: {error}") from None


def check_configuration(document: object) -> None:
    """Raise ``InvalidBody`` naming the first field of a configuration request that is wrong."""
    if not isinstance(document, dict):
        raise InvalidBody("the body must be a JSON object")
    if not _positive_integer(document.get("timeoutInSeconds")):
        raise InvalidBody("timeoutInSeconds must be a positive integer")
    parameters = document.get("parameters")
    if not isinstance(parameters, dict):
        raise InvalidBody("parameters must be a JSON object")
    for name in ("username", "password"):
        value = parameters.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidBody(f"parameters.{name} must be a non-empty string")
    vlan = parameters.get("vlan")
    if vlan is not None and not (_positive_integer(vlan) and vlan <= HIGHEST_VLAN):
        raise InvalidBody(f"parameters.vlan must be an integer from 1 to {HIGHEST_VLAN}")
    interfaces = parameters.get("interfaces")
    if not isinstance(interfaces, list) or not interfaces or not all(map(_positive_integer, interfaces)):
        raise InvalidBody("parameters.interfaces must be a non-empty list of positive integers")


def _positive_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
