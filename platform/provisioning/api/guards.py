"""Request guards of Service B: authentication and load shedding.

- Bearer tokens (``API_TOKENS``, comma-separated; off when empty): a request to the API without
  one of them is answered 401, saying nothing beyond the contract's shape.
- In-flight limit (``API_MAX_IN_FLIGHT`` per process): past it, a new request is refused with
  ``ServiceOverloaded`` (503 with ``Retry-After``) at once, so a flood costs a small answer
  instead of growing memory without bound. A status read holds its place for its handler; a
  create holds it until its (shielded) work ends, even when the client has hung up.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sanic import HTTPResponse, Request, Sanic

from ..errors import ServiceOverloaded
from .contract import answer

API_PREFIX = "/api/"
T = TypeVar("T")


class InFlight:
    """Requests this process is answering right now, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for the duration of the block."""
        self._take()
        try:
            yield
        finally:
            self.count -= 1

    def start_held(self, start: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Future[T]:
        """Take a place, then start the work; the place is held until the work ends, however
        its caller fares (the caller may stop waiting for it)."""
        self._take()
        work = asyncio.ensure_future(start())
        work.add_done_callback(self._give_back)
        return work

    def _take(self) -> None:
        if self.count >= self.limit:
            raise ServiceOverloaded()
        self.count += 1

    def _give_back(self, _work: asyncio.Future[Any]) -> None:
        self.count -= 1


def token_accepted(header: str | None, tokens: frozenset[str]) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    presented = header.removeprefix("Bearer ").encode()
    # Compare with every token in constant time: timing tells nothing about a near miss.
    return any([hmac.compare_digest(presented, token.encode()) for token in tokens])


def require_bearer_token(app: Sanic[Any, Any], tokens: frozenset[str]) -> None:
    """Answer 401 to API requests without an accepted token; nothing when ``tokens`` is empty."""
    if not tokens:
        return

    async def authenticate(request: Request[Any, Any]) -> HTTPResponse | None:
        if request.path.startswith(API_PREFIX) and not token_accepted(
            request.headers.get("authorization"), tokens
        ):
            response = answer(401, message="Unauthorized")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    app.register_middleware(authenticate, "request", priority=900)
