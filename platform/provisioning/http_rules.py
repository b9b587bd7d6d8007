"""Two rules of RFC 9110 that Sanic leaves to the application, for every app served here.

- **A request with a body on a route that reads none** (GET, HEAD, OPTIONS: Sanic's routes
  ignore their bodies) is answered 400 ``<METHOD> requests must not have a body``. RFC 9110
  §9.3.1: such content "has no generally defined semantics" and "might lead some
  implementations to reject the request and close the connection because of its potential as a
  request smuggling attack". Sanic answered it and then logged ``body not consumed`` at error
  level. The connection closes after the 400. ``Content-Length: 0``, which some clients send on
  every request, is no body (and no more logged as ``body not consumed`` either).
- **A 405 names the allowed methods in ``Allow``** (RFC 9110 §15.5.6: the server "MUST
  generate an Allow header field"). The apps' error handlers build their own bodies and drop
  the header Sanic's ``MethodNotAllowed`` carries; it is put back here, from the router.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import BadRequest, MethodNotAllowed, NotFound
from sanic.http import Http
from sanic.response import BaseHTTPResponse

from .http_protocol import body_pending
from .instrumentation.sanic_http import KNOWN_METHODS


def allowed_methods(app: Sanic[Any, Any], request: Request[Any, Any]) -> list[str]:
    """The methods the router has for the request's path; none when it has the method too (a
    405 of the handler's own) or no route at all. (Sanic's router names them only when one route
    holds every method of the path, not for a path several handlers share: each known method is
    then tried, for a 405 only.)"""
    host = request.headers.getone("host", None)
    try:
        app.router.get(request.path, request.method, host)
    except MethodNotAllowed as refusal:
        if refusal.allowed_methods:
            return sorted(refusal.allowed_methods)
        return [method for method in sorted(KNOWN_METHODS) if _routed(app, request.path, method, host)]
    except NotFound:
        return []
    return []


def _routed(app: Sanic[Any, Any], path: str, method: str, host: str | None) -> bool:
    try:
        app.router.get(path, method, host)
    except (MethodNotAllowed, NotFound):
        return False
    return True


def apply_rules(app: Sanic[Any, Any]) -> None:
    """Register both rules on ``app``."""

    async def refuse_ignored_body(request: Request[Any, Any]) -> None:
        route, stream = request.route, request.stream
        if (route is None or not route.extra.ignore_body or not isinstance(stream, Http)
                or not stream.request_body):
            return
        if not body_pending(stream):  # Content-Length: 0: nothing to read (Sanic logs it unread)
            stream.request_body = None
            return
        stream.keep_alive = False
        raise BadRequest(f"{request.method} requests must not have a body")

    async def name_allowed_methods(request: Request[Any, Any], response: BaseHTTPResponse) -> None:
        if response.status == 405 and "allow" not in response.headers:
            allowed = allowed_methods(request.app, request)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)

    # After the server span opens (priority 1000) and before any app's own checks.
    app.register_middleware(refuse_ignored_body, "request", priority=950)
    app.register_middleware(name_allowed_methods, "response", priority=950)
