"""The bounds of a create's body: plain values, read into ``ApiSettings`` from ``API_MAX_*`` and
applied by ``models.parse_provisioning_request``; a module of their own so that the settings
need nothing of the request model."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The bounds of a create's body (``ApiSettings.request_limits``, from ``API_MAX_*``).

    The defaults only refuse absurd input: no device waits an hour for its configuration, has
    a thousand ports, or numbers an interface past RFC 2863's ``InterfaceIndex``
    (1..2147483647, a signed 32-bit integer in any Service A). A value past a bound is a 400
    that names the field and the bound."""

    max_timeout_seconds: int = 3600  # API_MAX_TIMEOUT_SECONDS
    max_interfaces: int = 1024  # API_MAX_INTERFACES: entries of parameters.interfaces
    max_interface_number: int = 2_147_483_647  # API_MAX_INTERFACE_NUMBER: each entry's maximum
    max_credential_length: int = 256  # API_MAX_CREDENTIAL_LENGTH: username, password (characters)


DEFAULT_LIMITS = RequestLimits()
# A task message was checked against the limits of the Service B that queued it (which may
# have been raised); a worker checks only its shape.
UNLIMITED = RequestLimits(sys.maxsize, sys.maxsize, sys.maxsize, sys.maxsize)
