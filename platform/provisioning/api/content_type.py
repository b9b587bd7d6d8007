"""``API_REQUIRE_JSON_CONTENT_TYPE``: a request body is JSON only when it says so.

Off by default: the classic contract took any Content-Type, and a client that posts with a
bare ``curl -d ...`` sends ``application/x-www-form-urlencoded``; such clients must keep
working. On, a create
whose one ``Content-Type`` field is not ``application/json`` (any case, parameters such as
``charset=utf-8`` allowed, as RFC 9110 8.3.1 has it) is a 415 before anything is read or
stored. Then no web page can send a create as a CORS "simple" request (``text/plain``, a form):
a browser preflights ``application/json``, and Service B answers no preflight.
"""

from __future__ import annotations

from collections.abc import Sequence

from sanic.headers import parse_content_header

from ..errors import UnsupportedMediaType

JSON_MEDIA_TYPE = "application/json"


def require_json(values: Sequence[str]) -> None:
    """Raise ``UnsupportedMediaType`` unless ``values`` (every ``Content-Type`` field of the
    request) is exactly one ``application/json``."""
    if len(values) != 1 or parse_content_header(values[0])[0] != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType()
