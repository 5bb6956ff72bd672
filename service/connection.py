"""Client connections as the hub sees them: a wake-up event and a ping clock.

A transport loop sleeps on its connection's `wake` and nothing else; the
hub sets it when an event is queued, when a subscription ends, and when the
connection has been silent long enough to owe the client a keep-alive.
"""

from __future__ import annotations

import asyncio
import time


class Connection:
    """One client connection, holding zero or more subscriptions."""

    __slots__ = ("gone", "ping_due", "transport", "wake", "written")

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.wake = asyncio.Event()
        self.written = time.monotonic()
        self.ping_due = False
        self.gone = False

    def hang_up(self) -> None:
        """The client went away: wake the loop so it frees everything now."""
        self.gone = True
        self.wake.set()

    def wrote(self) -> None:
        """Note that the client was just sent something."""
        self.written = time.monotonic()
        self.ping_due = False
