"""The broker protocol: what the hub and the API rely on from any event log."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

from ..event import Event
from ..topics import pattern_matches

LiveHandler = Callable[[Event], None]


class Draft(NamedTuple):
    """An event about to be published: its topic, stored body and dedup key."""

    topic: str
    body: bytes
    msg_id: str | None = None


class Published(NamedTuple):
    """A stored event; `duplicate` when a dedup key matched an earlier one."""

    event: Event
    duplicate: bool


class Retention(NamedTuple):
    """How much history the log keeps: seconds, events per topic, bytes."""

    max_age: float
    max_per_topic: int
    max_bytes: int


class Bounds(NamedTuple):
    """The retained log: sequences `first` to `last`; empty when first > last."""

    first: int
    last: int


class Broker(Protocol):
    """An ordered, bounded event log shared by every instance of a deployment.

    Guarantees every implementation gives:

    - Sequences are positive, strictly increasing in publish order across all
      topics, and never reused within one `epoch`.
    - `publish` stores the drafts in order and returns once each is stored,
      or raises BrokerUnavailable; a draft whose `msg_id` was seen within the
      dedup window is not stored again and returns the earlier event.
    - `read` returns retained events matching the patterns, in sequence order.
    - The live feed hands every stored event to the handler exactly once, in
      sequence order, starting after the sequence given to `start_live`, and
      resumes after the last one handed over when a connection comes back.
    """

    epoch: str
    retention: Retention

    @property
    def ready(self) -> bool:
        """Whether the broker can take publishes now."""
        ...

    async def start(self) -> None:
        """Connect and make sure the log exists; raise BrokerUnavailable if not."""
        ...

    async def close(self) -> None:
        """Stop the live feed and disconnect."""
        ...

    async def publish(self, drafts: Sequence[Draft]) -> list[Published]:
        """Store the drafts in order; see the class guarantees."""
        ...

    async def bounds(self) -> Bounds:
        """The first and last retained sequences."""
        ...

    async def read(
        self, patterns: Sequence[str], after: int, until: int, limit: int
    ) -> tuple[list[Event], int]:
        """Up to `limit` retained events with `after < seq <= until` matching
        any of `patterns`, oldest first, and the sequence the read got to:
        every matching event up to it is in the list, and it equals `until`
        once nothing is left."""
        ...

    async def dropped(self, patterns: Sequence[str], after: int) -> bool:
        """Whether the per-topic limit may have dropped an event with a sequence
        above `after` on a topic matching `patterns`.

        May answer True when nothing was dropped (it errs towards a gap
        notice), never False when something was.
        """
        ...

    async def start_live(self, after: int, handler: LiveHandler) -> None:
        """Start handing every event with a sequence above `after` to `handler`."""
        ...


def select(
    events: Iterable[Event], patterns: Sequence[str], until: int, limit: int
) -> tuple[list[Event], int]:
    """`Broker.read` over `events`, which hold, in order, every event after the
    read's start: the matching ones up to `until`, and the position reached."""
    out: list[Event] = []
    for event in events:
        if event.seq > until:
            break
        if any(pattern_matches(p, event.topic) for p in patterns):
            if len(out) == limit:
                return out, out[-1].seq
            out.append(event)
    return out, until
