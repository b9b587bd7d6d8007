"""Service B's guards, as pure logic: token checks and the in-flight count."""

from __future__ import annotations

import asyncio

import pytest

from provisioning.api.guards import InFlight, token_accepted
from provisioning.errors import ServiceOverloaded


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("Bearer abc", True), ("Bearer xyz", True), ("Bearer abcd", False), ("bearer abc", False),
     ("Basic abc", False), ("Bearer ", False), ("", False), (None, False)],
)
def test_only_a_configured_bearer_token_is_accepted(header: str | None, accepted: bool) -> None:
    assert token_accepted(header, frozenset({"abc", "xyz"})) is accepted


def test_past_the_limit_a_request_is_refused_until_a_place_is_free() -> None:
    in_flight = InFlight(limit=1)
    with in_flight.admit():
        with pytest.raises(ServiceOverloaded), in_flight.admit():
            pass
    with in_flight.admit():
        assert in_flight.count == 1
    assert in_flight.count == 0


async def test_a_cancelled_request_gives_its_place_back() -> None:
    in_flight = InFlight(limit=1)

    async def handler() -> None:
        with in_flight.admit():
            await asyncio.sleep(3600)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    assert in_flight.count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_flight.count == 0


async def test_a_create_keeps_its_place_until_its_work_ends_even_if_its_client_left() -> None:
    in_flight = InFlight(limit=1)
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    held = in_flight.start_held(work)

    async def client() -> str:
        return await asyncio.shield(held)

    waiting_client = asyncio.create_task(client())
    await asyncio.sleep(0)
    waiting_client.cancel()  # the client hangs up; the shielded work goes on
    with pytest.raises(ServiceOverloaded):
        in_flight.start_held(work)
    release.set()
    assert await held == "done"
    assert in_flight.count == 0
