"""What aiormq and the network raise when a connection or channel is gone."""

from __future__ import annotations

import asyncio

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

CONNECTION_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, asyncio.TimeoutError)
