"""The in-process broker: a bounded log in one process, same semantics as NATS.

It backs unit tests and `herald serve --broker memory` (one worker only,
since nothing is shared between processes).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence

from ..cursor import make_epoch
from ..event import Event
from ..topics import pattern_matches
from .base import Bounds, Draft, LiveHandler, Published, Retention, select


class MemoryBroker:
    """Keeps events in order in a deque, trimmed by age, count per topic and bytes."""

    def __init__(
        self,
        max_age: float = 3600.0,
        max_per_topic: int = 1000,
        max_bytes: int = 256 * 1024 * 1024,
        dedup_window: float = 120.0,
    ) -> None:
        self.epoch = make_epoch(time.time_ns())
        self.retention = Retention(max_age, max_per_topic, max_bytes)
        self._max_age = max_age
        self._max_per_topic = max_per_topic
        self._max_bytes = max_bytes
        self._dedup_window = dedup_window
        self._log: collections.deque[tuple[float, Event]] = collections.deque()
        self._per_topic: collections.Counter[str] = collections.Counter()
        # The newest sequence the per-topic limit dropped, by topic.
        self._dropped: dict[str, int] = {}
        self._bytes = 0
        self._last = 0
        # A msg_id keeps its event for the window even after retention drops
        # it from the log, as JetStream keeps its duplicate window.
        self._dedup: dict[str, tuple[float, Event]] = {}
        self._handler: LiveHandler | None = None
        self._live_after = 0

    @property
    def ready(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handler = None

    async def publish(self, drafts: Sequence[Draft]) -> list[Published]:
        now = time.monotonic()
        self._expire(now)
        out = []
        for draft in drafts:
            seen = self._dedup.get(draft.msg_id) if draft.msg_id else None
            if seen is not None and now - seen[0] < self._dedup_window:
                out.append(Published(seen[1], True))
                continue
            out.append(Published(self._append(now, draft), False))
        return out

    def _append(self, now: float, draft: Draft) -> Event:
        self._last += 1
        event = Event(self._last, draft.topic, draft.body, self.epoch)
        self._log.append((now, event))
        self._per_topic[event.topic] += 1
        self._bytes += len(event.body)
        if draft.msg_id:
            self._dedup[draft.msg_id] = (now, event)
        self._trim()

        if self._handler is not None and event.seq > self._live_after:
            self._live_after = event.seq
            self._handler(event)
        return event

    def _trim(self) -> None:
        # Per-topic limits remove that topic's oldest event wherever it lies,
        # as JetStream's max_msgs_per_subject does.
        newest = self._log[-1][1]
        if self._per_topic[newest.topic] > self._max_per_topic:
            for i, (_, event) in enumerate(self._log):
                if event.topic == newest.topic:
                    del self._log[i]
                    self._forget(event)
                    self._dropped[event.topic] = event.seq
                    break
        while self._bytes > self._max_bytes and self._log:
            self._forget(self._log.popleft()[1])

    def _expire(self, now: float) -> None:
        while self._log and now - self._log[0][0] > self._max_age:
            self._forget(self._log.popleft()[1])
        if len(self._dropped) > 1000 and self._log:
            # Older drops are covered by the log's own first sequence.
            first = self._log[0][1].seq
            self._dropped = {t: s for t, s in self._dropped.items() if s >= first}
        if len(self._dedup) > 10_000:
            cutoff = now - self._dedup_window
            self._dedup = {k: v for k, v in self._dedup.items() if v[0] >= cutoff}

    def _forget(self, event: Event) -> None:
        self._per_topic[event.topic] -= 1
        if not self._per_topic[event.topic]:
            del self._per_topic[event.topic]
        self._bytes -= len(event.body)

    async def bounds(self) -> Bounds:
        self._expire(time.monotonic())
        first = self._log[0][1].seq if self._log else self._last + 1
        return Bounds(first, self._last)

    async def read(
        self, patterns: Sequence[str], after: int, until: int, limit: int
    ) -> tuple[list[Event], int]:
        self._expire(time.monotonic())
        events = (event for _, event in self._log if event.seq > after)
        return select(events, patterns, until, limit)

    async def dropped(self, patterns: Sequence[str], after: int) -> bool:
        return any(
            seq > after and any(pattern_matches(p, topic) for p in patterns)
            for topic, seq in self._dropped.items()
        )

    async def start_live(self, after: int, handler: LiveHandler) -> None:
        self._live_after = after
        self._handler = handler
        # Events already stored after `after` come first, as from JetStream.
        for _, event in list(self._log):
            if event.seq > self._live_after:
                self._live_after = event.seq
                handler(event)
