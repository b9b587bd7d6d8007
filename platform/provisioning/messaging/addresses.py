"""The broker list of one process: which node to connect to now, and which one next.

Every process shuffles ``BrokerSettings.urls`` once, when it starts, so the clients of a
cluster spread over its nodes instead of all piling onto the first one; from then on it walks
that order round and round. A connection that is lost, or one that could not be made, moves
it to the next address at once; a *round* ends once every address failed in a row, and only
then does the supervisor pause by the backoff policy (``Broker``). A single address is a round
of its own: the one-broker form behaves as it always did, a pause before every attempt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from urllib.parse import urlsplit


def describe(url: str) -> str:
    """``host:port`` of an AMQP URL, for logs and metrics: never its credentials."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    host = parts.hostname or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BrokerAddresses:
    """The shuffled broker list and the position in it."""

    def __init__(self, urls: Sequence[str], *, rng: random.Random | None = None) -> None:
        if not urls:
            raise ValueError("at least one broker URL is needed")
        self.urls = list(urls)
        (rng or random.Random()).shuffle(self.urls)
        self._index = 0
        self._failed_in_a_row = 0

    @property
    def current(self) -> str:
        """The URL to connect to now."""
        return self.urls[self._index]

    @property
    def node(self) -> str:
        """``host:port`` of the current URL."""
        return describe(self.current)

    def connected(self) -> None:
        """A connection to ``current`` is up (topology declared, consumers attached)."""
        self._failed_in_a_row = 0

    def failed(self, *, was_connected: bool) -> bool:
        """The connection to ``current`` is lost (``was_connected``) or could not be made: move
        to the next address. True when a pause by the backoff policy is due before the next
        attempt: after a lost connection (its clients would otherwise all rush at once), and
        after a whole round of failed attempts."""
        self._index = (self._index + 1) % len(self.urls)
        if was_connected:
            self._failed_in_a_row = 0
            return True
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= len(self.urls):
            self._failed_in_a_row = 0
            return True
        return False
