"""The hub: one per process, it fans the broker's live feed out to subscriptions.

It reads the live feed once, matches each event against a token trie of
patterns and pushes it, already encoded, to each matching subscription. It
keeps a bounded cache of the newest events so that resumes and long polls
close behind the head are served without a round trip to the broker.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import operator
import time
from collections.abc import Sequence

from .broker import Broker
from .broker.base import select
from .connection import Connection
from .cursor import Cursor
from .errors import EndReason, HeraldError
from .event import Event
from .subscription import Gap, Item, Subscription
from .topics import PatternTrie, pattern_matches

log = logging.getLogger("herald.hub")
_SEQ = operator.attrgetter("seq")


class InstanceFull(HeraldError):
    """The worker holds as many client connections as it is allowed."""


class Hub:
    """Local fan-out of one process; see the module docstring."""

    def __init__(
        self,
        broker: Broker,
        max_connections: int = 50_000,
        queue_events: int = 10_000,
        queue_bytes: int = 1024 * 1024,
        cache_events: int = 10_000,
        cache_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.broker = broker
        self.head = 0
        self.subscriptions: set[Subscription] = set()
        self._trie: PatternTrie[Subscription] = PatternTrie()
        self._max_connections = max_connections
        self._queue_events = queue_events
        self._queue_bytes = queue_bytes
        self._cache: list[Event] = []
        self._cache_times: list[float] = []
        self._cache_floor = 0
        self._cache_bytes = 0
        self._cache_max_events = cache_events
        # Half the log's byte limit at most, so that what the cache holds
        # after a cursor is never more than the log keeps (see _vouches).
        self._cache_max_bytes = min(cache_bytes, broker.retention.max_bytes // 2)
        self.connections: set[Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sweeper: asyncio.Task[None] | None = None
        # Counters for /metrics: events handed to subscriptions (live), and
        # subscriptions ended for falling behind.
        self.deliveries = 0
        self.slow_ended = 0

    @property
    def epoch(self) -> str:
        return self.broker.epoch

    async def start(self) -> None:
        """Start the live feed just after the newest stored event."""
        bounds = await self.broker.bounds()
        self.head = bounds.last
        self._cache_floor = bounds.last
        await self.broker.start_live(bounds.last, self._dispatch)

    def start_pings(self, interval: float) -> None:
        """Wake every connection silent for `interval` seconds so it sends a ping.

        One sweep a second for the whole process is far cheaper than a
        timer per connection per wait.
        """

        async def sweep() -> None:
            while True:
                await asyncio.sleep(min(1.0, interval / 2))
                stale = time.monotonic() - interval
                for conn in self.connections:
                    if conn.written < stale and not conn.ping_due:
                        conn.ping_due = True
                        conn.wake.set()

        self._sweeper = asyncio.get_running_loop().create_task(sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.end_all(EndReason.DRAIN)

    def connect(self, transport: str) -> Connection:
        """Count a new client connection, or raise InstanceFull."""
        if len(self.connections) >= self._max_connections:
            raise InstanceFull
        conn = Connection(transport)
        self.connections.add(conn)
        self._idle.clear()
        return conn

    def disconnect(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no client connection is open."""
        await self._idle.wait()

    def _dispatch(self, event: Event) -> None:
        # Called for every event, in sequence order: keep it free of awaits.
        self.head = event.seq
        self._remember(event)
        dead = None
        matched = 0
        for sub in self._trie.match(event.topic):
            matched += 1
            sub.push(event)
            if sub.ended is not None:
                dead = dead or []
                dead.append(sub)
        self.deliveries += matched
        if dead:
            self.slow_ended += len(dead)
            for sub in dead:
                # Client misbehaviour, not a server fault: info, once each.
                log.info(
                    "subscriber too slow, disconnected",
                    extra={"patterns": ",".join(sub.patterns[:5]), "seq": event.seq},
                )
                self.close(sub, sub.ended or EndReason.SLOW)

    def _remember(self, event: Event) -> None:
        cache = self._cache
        cache.append(event)
        self._cache_times.append(time.monotonic())
        self._cache_bytes += len(event.body)
        over = len(cache) - self._cache_max_events
        if (
            over > self._cache_max_events // 4
            or self._cache_bytes > self._cache_max_bytes
        ):
            # Trim in chunks so the list shift is paid once per many events.
            cut = max(over, len(cache) // 4, 1)
            self._cache_bytes -= sum(len(e.body) for e in cache[:cut])
            self._cache_floor = cache[cut - 1].seq
            del cache[:cut]
            del self._cache_times[:cut]

    async def open(
        self, patterns: Sequence[str], cursor: Cursor | None, conn: Connection
    ) -> Subscription:
        """Register a subscription starting at `cursor`, or at the head if None.

        The subscription is in the trie before this returns, so every event
        the broker stores after that is delivered; with a cursor, events
        between it and the head are replayed first, and a gap notice comes
        first if some of them are no longer retained.
        """
        wake = conn.wake
        sub = Subscription(
            list(patterns), self.epoch, wake, self._queue_events, self._queue_bytes
        )
        if cursor is not None:
            start, gap = await self._resume_point(sub.patterns, cursor)
            sub.last_seq = start
            if gap:
                sub.gap = Gap(str(cursor), str(Cursor(self.epoch, start)))

        # No await between reading the head and registering: every event
        # after `head` is then pushed live, everything up to it is replayed.
        if cursor is None:
            sub.last_seq = self.head
        sub.replay_until = self.head
        self.subscriptions.add(sub)
        for pattern in sub.patterns:
            self._trie.add(pattern, sub)
        if sub.ready:
            wake.set()
        return sub

    async def _resume_point(
        self, patterns: Sequence[str], cursor: Cursor
    ) -> tuple[int, bool]:
        """The sequence to deliver after for `cursor`, and whether some of the
        events it asks for are gone (a gap notice is then due).

        A cursor that is gone or foreign resumes before the oldest retained
        event; one whose topics lost events to the per-topic limit resumes
        where it is, after the notice.
        """
        if cursor.epoch == self.epoch and self._vouches(patterns, cursor.seq):
            return cursor.seq, False
        bounds = await self.broker.bounds()
        if cursor.epoch != self.epoch or not (
            bounds.first - 1 <= cursor.seq <= bounds.last
        ):
            return bounds.first - 1, True
        return cursor.seq, await self.broker.dropped(patterns, cursor.seq)

    def _vouches(self, patterns: Sequence[str], after: int) -> bool:
        """Whether the cache alone shows that the log still holds every event
        after `after` on `patterns`, so no round trip to the broker is needed.

        Every event after a cursor at or past the cache's floor is in the
        cache. The log can have dropped one of them only by age (checked on
        the oldest), by bytes (the cache holds at most half the log's
        limit), or by the per-topic limit: that takes more than
        `history_per_topic` newer events of the same topic, all of which the
        cache would hold. Serving from the cache what the log has dropped
        would hide a gap that another instance reports.
        """
        if not self._cache_floor <= after <= self.head:
            return False
        cache = self._cache
        i = bisect.bisect_right(cache, after, key=_SEQ)
        if i == len(cache):
            return True
        retention = self.broker.retention
        if time.monotonic() - self._cache_times[i] > retention.max_age * 0.9:
            return False
        counts: dict[str, int] = {}
        limit = retention.max_per_topic
        for j in range(i, len(cache)):
            topic = cache[j].topic
            if any(pattern_matches(p, topic) for p in patterns):
                counts[topic] = n = counts.get(topic, 0) + 1
                if n > limit:
                    return False
        return True

    def close(
        self, sub: Subscription, reason: EndReason = EndReason.CLIENT_GONE
    ) -> None:
        """Unregister `sub`; safe to call more than once."""
        sub.end(reason)
        if sub in self.subscriptions:
            self.subscriptions.discard(sub)
            for pattern in sub.patterns:
                self._trie.remove(pattern, sub)

    def end_all(self, reason: EndReason) -> None:
        """End every subscription and wake every connection, as when draining."""
        for sub in list(self.subscriptions):
            self.close(sub, reason)
        for conn in self.connections:
            conn.wake.set()

    def unsubscribe(self, sub: Subscription, patterns: Sequence[str]) -> None:
        """Drop `patterns` from `sub`; a subscription left with none is closed."""
        for pattern in patterns:
            if pattern in sub.patterns:
                sub.patterns.remove(pattern)
                if pattern not in sub.patterns:
                    self._trie.remove(pattern, sub)
        if not sub.patterns:
            self.close(sub)

    async def next(self, sub: Subscription, limit: int) -> list[Item]:
        """Items ready for `sub`: a replay page while replaying, else its queue."""
        if not sub.replaying:
            return sub.take(limit)

        items: list[Item] = []
        if sub.gap is not None:
            items.append(sub.gap)
            sub.gap = None
        events, position = await self._read(sub, limit)
        sub.advance(position)
        items.extend(events)
        return items

    async def _read(self, sub: Subscription, limit: int) -> tuple[list[Event], int]:
        after, until = sub.last_seq, sub.replay_until
        if after < self._cache_floor:
            return await self.broker.read(sub.patterns, after, until, limit)
        return self._from_cache(sub.patterns, after, until, limit)

    def _from_cache(
        self, patterns: Sequence[str], after: int, until: int, limit: int
    ) -> tuple[list[Event], int]:
        """Like `Broker.read`, from the cache; `after` must be at or past its floor."""
        cache = self._cache
        i = bisect.bisect_right(cache, after, key=_SEQ)
        return select(itertools.islice(cache, i, None), patterns, until, limit)

    def recent(
        self, patterns: Sequence[str], cursor: Cursor, limit: int
    ) -> tuple[list[Event], Cursor] | None:
        """Events after `cursor` and the cursor after them, straight from the
        cache; None when there are none or the cache cannot vouch for them.

        A long poll behind the head is answered this way without opening a
        subscription at all.
        """
        if cursor.epoch != self.epoch or not self._vouches(patterns, cursor.seq):
            return None
        events, position = self._from_cache(patterns, cursor.seq, self.head, limit)
        if not events:
            return None
        return events, Cursor(self.epoch, position)
