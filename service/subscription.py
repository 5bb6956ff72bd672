"""A subscription: one client's patterns, position and bounded queue.

The hub pushes live events into the queue without ever waiting; a queue
that passes its bounds ends the subscription as too slow, and the client
resumes from its cursor. Replay of history is pulled page by page by the
transport's own loop, so a slow reader paces its own replay.

A transport that can write without waiting may attach a sink: a caught-up
subscription with nothing queued then hands each live event straight to
it, and the connection's task is not woken per event.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import NamedTuple

from .errors import EndReason
from .event import Event


class Gap(NamedTuple):
    """Events asked for are gone: delivery resumes after `resumed`."""

    asked: str | None
    resumed: str


Item = Event | Gap
# Writes an event to the client now and returns True, or returns False when
# it cannot, and the event is then queued as usual.
Sink = Callable[[Event], bool]


class Subscription:
    """Delivery state of one subscription; see the module docstring."""

    __slots__ = (
        "_bytes",
        "_max_bytes",
        "_max_events",
        "_pushed",
        "ended",
        "epoch",
        "gap",
        "last_seq",
        "patterns",
        "queue",
        "replay_until",
        "sink",
        "wake",
    )

    def __init__(
        self,
        patterns: list[str],
        epoch: str,
        wake: asyncio.Event,
        max_events: int,
        max_bytes: int,
    ) -> None:
        self.patterns = patterns
        self.epoch = epoch
        self.wake = wake
        self.queue: collections.deque[Event] = collections.deque()
        self.last_seq = 0
        self.replay_until = 0
        self.gap: Gap | None = None
        self.ended: EndReason | None = None
        self.sink: Sink | None = None
        self._pushed = 0
        self._bytes = 0
        self._max_events = max_events
        self._max_bytes = max_bytes

    @property
    def cursor(self) -> str:
        """The position after the last event this subscription handed out."""
        return f"{self.epoch}-{self.last_seq}"

    @property
    def replaying(self) -> bool:
        return self.replay_until > self.last_seq

    @property
    def ready(self) -> bool:
        """Whether `take` or a replay page has something to hand out now."""
        return bool(self.queue) or self.gap is not None or self.replaying

    def push(self, event: Event) -> None:
        """Queue a live event; never waits. Called by the hub only."""
        # One event can match several of the patterns: the first push wins.
        if event.seq <= self._pushed or self.ended is not None:
            return
        self._pushed = event.seq

        if (
            self.sink is not None
            and not self.queue
            and self.gap is None
            and self.replay_until <= self.last_seq < event.seq
            and self.sink(event)
        ):
            self.last_seq = event.seq
            return

        if len(self.queue) >= self._max_events or self._bytes > self._max_bytes:
            self.end(EndReason.SLOW)
            return
        self.queue.append(event)
        self._bytes += len(event.body)
        self.wake.set()

    def end(self, reason: EndReason) -> None:
        """Mark the subscription over; queued events are dropped, not sent."""
        if self.ended is None:
            self.ended = reason
            self.queue.clear()
            self._bytes = 0
            self.wake.set()

    def take(self, limit: int) -> list[Item]:
        """Up to `limit` queued live items, oldest first, skipping replayed ones."""
        out: list[Item] = []
        if self.gap is not None:
            out.append(self.gap)
            self.gap = None
        queue = self.queue
        while queue and len(out) < limit:
            event = queue.popleft()
            self._bytes -= len(event.body)
            if event.seq > self.last_seq:
                out.append(event)
                self.last_seq = event.seq
        return out

    def advance(self, position: int) -> None:
        """Record that replay has handed out everything up to `position`."""
        self.last_seq = max(self.last_seq, position)
