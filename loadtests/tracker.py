"""Delivery checks for Locust subscribers: latency, loss, duplicates, order.

Each subscriber owns one `Tracker` for its whole life, across reconnects.
Every delivered event is reported to Locust as a request of type DELIVER,
named after the transport, whose response time is the publish-to-receive
latency. Integrity problems are reported as failed DELIVER requests named
`<transport> lost`, `... duplicate`, `... out-of-order` and `... gap`, one
per event, so Locust's failure count is the number of bad events.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from wire import Delivered, Frame, stamp_of

DELIVER = "DELIVER"
# A hole in a chain is fired once per missing event, but this many times at
# most, so that one huge hole cannot stall the user.
_MAX_FIRES = 1000
_RECENT = 4096


class Lost(Exception):
    """Events of a publisher's chain never arrived."""


class Duplicate(Exception):
    """An event arrived twice on one subscription."""


class OutOfOrder(Exception):
    """An event arrived after one that came later in the log."""


class GapNotice(Exception):
    """The service said events asked for are no longer in its history."""


class Tracker:
    """Checks one subscriber's deliveries; see the module docstring."""

    def __init__(self, environment: Any, transport: str) -> None:
        self._fire = environment.events.request.fire
        self.transport = transport
        self.cursor: str | None = None
        self.delivered = 0
        self._max_seq = 0
        self._recent: deque[int] = deque(maxlen=_RECENT)
        self._recent_set: set[int] = set()
        self._chains: dict[tuple[str, str], int] = {}

    def event(self, event: Delivered | Frame, size: int) -> None:
        """Check and report one delivered event of `size` bytes."""
        received = time.time()
        seq = int(event.id.rpartition("-")[2])
        if seq <= self._max_seq:
            if seq in self._recent_set:
                self._fail("duplicate", Duplicate("an event id came again"))
            else:
                self._fail("out-of-order", OutOfOrder("an event id came late"))
            return
        self._max_seq = seq
        self.cursor = event.id
        self._remember(seq)

        stamp = stamp_of(event.data)
        if stamp is None:
            return  # not a load-test event: nothing to measure
        self.delivered += 1
        self._fire(
            request_type=DELIVER,
            name=self.transport,
            response_time=max(0.0, (received - stamp.t) * 1000),
            response_length=size,
            exception=None,
            context={},
        )
        self._chain(event.topic, stamp.p, stamp.n)

    def gap(self, resumed: str | None) -> None:
        """Report a gap notice; delivery goes on after `resumed`."""
        if resumed:
            self.cursor = resumed
        self._fail("gap", GapNotice("events no longer in history"))

    def _chain(self, topic: str, chain: str, n: int) -> None:
        key = (topic, chain)
        last = self._chains.get(key)
        self._chains[key] = n if last is None else max(last, n)
        if last is None or n == last + 1:
            return
        if n > last + 1:
            error = Lost("a publisher's event never came")
            for _ in range(min(n - last - 1, _MAX_FIRES)):
                self._fail("lost", error)
        else:
            # A later position in the log carries an earlier number of the
            # same chain: the service reordered the publisher's events.
            self._fail("out-of-order", OutOfOrder("a publisher's events reordered"))

    def _remember(self, seq: int) -> None:
        if len(self._recent) == _RECENT:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)

    def _fail(self, what: str, error: Exception) -> None:
        self._fire(
            request_type=DELIVER,
            name=f"{self.transport} {what}",
            response_time=0,
            response_length=0,
            exception=error,
            context={},
        )
