"""One behaviour suite for every broker: the guarantees of `broker.base.Broker`.

Each test runs against MemoryBroker and against NatsBroker on the session's
nats-server, the latter on a stream of its own that is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import nats.js.errors
import pytest

from service.broker import Bounds, Broker, Draft, Published
from service.broker.memory import MemoryBroker
from service.broker.nats import NatsBroker
from service.cursor import Cursor
from service.event import Event, encode, encode_body, now_rfc3339

OpenBroker = Callable[..., Coroutine[Any, Any, Broker]]
WAIT = 5.0
T = TypeVar("T")


@pytest.fixture(params=["memory", "nats"])
async def open_broker(request: pytest.FixtureRequest) -> AsyncIterator[OpenBroker]:
    """Start brokers of the parameter's kind; keyword arguments are limits.

    NATS brokers opened by one test share one fresh stream, as the
    instances of one deployment do.
    """
    kind: str = request.param
    url = request.getfixturevalue("nats_url") if kind == "nats" else ""
    stream = "T" + uuid.uuid4().hex[:12]
    brokers: list[Broker] = []

    async def start(**limits: Any) -> Broker:
        broker: Broker
        if kind == "memory":
            broker = MemoryBroker(**limits)
        else:
            broker = NatsBroker(url, stream=stream, **limits)
        brokers.append(broker)
        await broker.start()
        return broker

    yield start

    try:
        for broker in brokers:
            if isinstance(broker, NatsBroker) and broker.ready:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await broker.js.delete_stream(stream)
                break
    finally:
        for broker in brokers:
            await broker.close()


def draft(topic: str, data: Any = None, msg_id: str | None = None) -> Draft:
    body = encode_body(topic, "message", encode(data), now_rfc3339())
    return Draft(topic, body, msg_id)


async def publish(broker: Broker, *topics: str) -> list[Event]:
    """Publish one event to each topic, as one batch, and return them stored."""
    published = await broker.publish([draft(t, i) for i, t in enumerate(topics)])
    assert not any(p.duplicate for p in published)
    return [p.event for p in published]


def seqs(events: Sequence[Event]) -> list[int]:
    return [e.seq for e in events]


async def read_all(
    broker: Broker, patterns: Sequence[str], after: int, until: int, limit: int
) -> list[Event]:
    """Page through `read` as the hub does, checking each returned position."""
    out: list[Event] = []
    for _ in range(1000):
        events, position = await broker.read(patterns, after, until, limit)
        assert len(events) <= limit
        assert all(after < e.seq <= position for e in events)
        assert position > after or (position == until and not events)
        out.extend(events)
        after = position
        if position == until:
            return out
    raise AssertionError("read never reached `until`")


async def eventually(check: Callable[[], Awaitable[T | None]], interval: float) -> T:
    """Poll `check` until it returns a value, for conditions that only the
    passing of time brings (a dedup window, an age limit), within WAIT."""
    for _ in range(int(WAIT / interval)):
        await asyncio.sleep(interval)
        result = await check()
        if result is not None:
            return result
    raise AssertionError(f"not within {WAIT} s")


class Collector:
    """A live handler that records events and lets a test await a count."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int) -> list[Event]:
        async with asyncio.timeout(WAIT):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events


async def test_fresh_log_is_empty(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    bounds = await broker.bounds()
    assert bounds.last == 0
    assert bounds.first > bounds.last
    assert await broker.read([">"], 0, 0, 10) == ([], 0)
    assert broker.ready


async def test_epoch_tags_every_event_id(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    (event,) = await publish(broker, "a")
    assert Cursor.parse(event.id) == Cursor(broker.epoch, event.seq)


async def test_sequences_increase_across_topics(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    events = await publish(broker, "a.b", "c", "a.b")
    for topic in ["d.e.f", "c", "a.b"]:
        events += await publish(broker, topic)

    assert events[0].seq >= 1
    assert seqs(events) == sorted(set(seqs(events)))
    assert (await broker.bounds()).last == events[-1].seq


async def test_batch_is_stored_in_order(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    batch = [draft(t, i) for i, t in enumerate(["x", "y.z", "x", "w", "y.z"])]
    published = await broker.publish(batch)

    assert [p.event.body for p in published] == [d.body for d in batch]
    first = published[0].event.seq
    assert seqs([p.event for p in published]) == list(range(first, first + 5))

    events, position = await broker.read([">"], 0, first + 4, 100)
    assert [e.body for e in events] == [d.body for d in batch]
    assert [e.topic for e in events] == ["x", "y.z", "x", "w", "y.z"]
    assert [e.json for e in events] == [p.event.json for p in published]
    assert position == first + 4


async def test_empty_batch_publishes_nothing(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    assert await broker.publish([]) == []
    assert (await broker.bounds()).last == 0


async def test_dedup_returns_the_original_event(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    (first,) = await broker.publish([draft("a", "first", msg_id="k1")])
    await publish(broker, "b")
    (again,) = await broker.publish([draft("a", "retry", msg_id="k1")])

    assert not first.duplicate
    assert again == Published(again.event, True)
    assert again.event.seq == first.event.seq
    assert again.event.body == first.event.body
    assert again.event.json == first.event.json
    assert (await broker.bounds()).last == first.event.seq + 1


async def test_dedup_within_one_batch(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    published = await broker.publish(
        [draft("a", 1, "k"), draft("a", 2, "other"), draft("a", 3, "k"), draft("a")]
    )
    assert [p.duplicate for p in published] == [False, False, True, False]
    assert published[2].event.seq == published[0].event.seq
    assert published[2].event.body == published[0].event.body
    events, _ = await broker.read(["a"], 0, published[-1].event.seq, 10)
    assert seqs(events) == seqs([published[i].event for i in (0, 1, 3)])


async def test_dedup_window_passes(open_broker: OpenBroker) -> None:
    window = 0.1  # the shortest JetStream takes
    broker = await open_broker(dedup_window=window)
    (first,) = await broker.publish([draft("a", 1, "k")])
    start = time.monotonic()
    assert (await broker.publish([draft("a", 2, "k")]))[0].duplicate

    async def retry() -> Published | None:
        (later,) = await broker.publish([draft("a", 3, "k")])
        return None if later.duplicate else later

    later = await eventually(retry, window / 4)
    assert time.monotonic() - start >= window
    assert later.event.seq == first.event.seq + 1


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["a.b.c"], ["a.b.c"]),
        (["a.*.c"], ["a.b.c", "a.x.c"]),
        (["a.b.*"], ["a.b.c", "a.b.d"]),
        (["a.>"], ["a.b.c", "a.b.d", "a.x.c", "a.b", "a.b.c.d"]),
        (["*"], ["z"]),
        ([">"], ["a.b.c", "a.b.d", "a.x.c", "a.b", "b.b.c", "a.b.c.d", "z"]),
        (["a.*.c", "a.b.*"], ["a.b.c", "a.b.d", "a.x.c"]),
        (["a.b.*", "a.>"], ["a.b.c", "a.b.d", "a.x.c", "a.b", "a.b.c.d"]),
        (["a.b", "*.*.c"], ["a.b.c", "a.x.c", "a.b", "b.b.c"]),
        (["z", "z"], ["z"]),
        (["nothing.here"], []),
    ],
)
async def test_read_matches_patterns(
    open_broker: OpenBroker, patterns: list[str], expected: list[str]
) -> None:
    broker = await open_broker()
    stored = await publish(
        broker, "a.b.c", "a.b.d", "a.x.c", "a.b", "b.b.c", "a.b.c.d", "z"
    )
    last = stored[-1].seq

    events, position = await broker.read(patterns, 0, last, 100)
    assert [e.topic for e in events] == expected
    assert seqs(events) == sorted(seqs(events))
    assert position == last

    # Paged one event at a time, the same events come, each once.
    paged = await read_all(broker, patterns, 0, last, 1)
    assert [e.topic for e in paged] == expected


async def test_read_after_until_limit_and_position(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    stored = await publish(broker, *["x", "y"] * 5)
    first = stored[0].seq
    x = [e.seq for e in stored if e.topic == "x"]
    at = {i: first + i - 1 for i in range(1, 11)}  # the i-th stored event

    async def read(after: int, until: int, limit: int) -> tuple[list[int], int]:
        events, position = await broker.read(["x"], after, until, limit)
        return seqs(events), position

    assert await read(0, at[10], 100) == (x, at[10])
    assert await read(at[3], at[7], 100) == ([at[5], at[7]], at[7])
    assert await read(at[3], at[6], 100) == ([at[5]], at[6])
    assert await read(at[9], at[10], 100) == ([], at[10])
    assert await read(at[10], at[10], 100) == ([], at[10])
    assert await read(at[10], at[10] + 50, 100) == ([], at[10] + 50)

    # Cut short by the limit: the position is at or past the last event
    # returned and before the next match, so a read from it misses nothing.
    events, position = await read(0, at[10], 2)
    assert events == [at[1], at[3]]
    assert at[3] <= position < at[5]

    events, position = await read(0, at[10], 5)
    assert events == x
    assert at[9] <= position <= at[10]

    for limit in (1, 2, 3, 7):
        assert seqs(await read_all(broker, ["x"], 0, at[8], limit)) == x[:4]
        assert seqs(await read_all(broker, ["y", ">"], at[2], at[9], limit)) == list(
            range(at[3], at[9] + 1)
        )


async def test_read_pages_through_a_long_log(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    stored = await publish(broker, *["x"] * 300, "a.b")
    last = stored[-1].seq
    assert seqs(await read_all(broker, ["x"], 0, last, 1000)) == seqs(stored[:300])
    for patterns in (["a.b"], ["a.*", "a.b"], ["*.b", "a.*"]):
        assert seqs(await read_all(broker, patterns, 0, last, 10)) == [last]


async def test_read_skips_what_retention_removed(open_broker: OpenBroker) -> None:
    broker = await open_broker(max_per_topic=1)
    stored = await publish(broker, "a", "b", "a", "b", "c")
    events, position = await broker.read([">"], 0, stored[-1].seq, 100)
    assert seqs(events) == seqs(stored[2:])
    assert position == stored[-1].seq


async def test_retention_per_topic(open_broker: OpenBroker) -> None:
    broker = await open_broker(max_per_topic=2)
    stored = await publish(broker, "a", "a", "b", "a", "c.d", "a", "b", "b")
    # a keeps its last two (4th and 6th), b its last two, c.d its only one.
    kept = [stored[i] for i in (3, 4, 5, 6, 7)]

    events, _ = await broker.read([">"], 0, stored[-1].seq, 100)
    assert seqs(events) == seqs(kept)
    assert await broker.bounds() == (kept[0].seq, stored[-1].seq)

    # Retention is per topic: a quiet topic keeps its old event.
    more = await publish(broker, "a", "a", "a")
    events, _ = await broker.read([">"], 0, more[-1].seq, 100)
    assert seqs(events) == seqs([stored[4], stored[6], stored[7], *more[1:]])
    assert (await broker.bounds()).first == stored[4].seq


async def test_dropped_reports_per_topic_eviction(open_broker: OpenBroker) -> None:
    broker = await open_broker(max_per_topic=2)
    await publish(broker, "a.x", "b.x", "a.x", "a.x", "a.x")

    # Events 1 and 3 of `a.x` are gone; `b.x` lost nothing.
    assert await broker.dropped(["a.x"], 1)
    assert await broker.dropped(["a.*"], 2)
    assert await broker.dropped(["b.x", ">"], 0)
    assert not await broker.dropped(["b.x"], 0)
    assert not await broker.dropped(["a.x"], 3)
    assert not await broker.dropped(["c.>"], 0)


async def test_dedup_outlives_retention(open_broker: OpenBroker) -> None:
    broker = await open_broker(max_per_topic=1)
    (first,) = await broker.publish([draft("a", "first", "k")])
    await publish(broker, "a")
    (again,) = await broker.publish([draft("a", "retry", "k")])
    assert again.duplicate
    assert again.event.seq == first.event.seq
    assert (await broker.bounds()).last == first.event.seq + 1


async def test_retention_by_bytes(open_broker: OpenBroker) -> None:
    limit = 8 * 1024
    broker = await open_broker(max_bytes=limit)
    stored = [
        (await broker.publish([draft("big", "x" * 1000)]))[0].event for _ in range(20)
    ]
    events, _ = await broker.read([">"], 0, stored[-1].seq, 100)

    # The newest events survive, contiguously, within the byte limit.
    assert 2 <= len(events) < 20
    assert seqs(events) == seqs(stored[-len(events) :])
    assert sum(len(e.body) for e in events) <= limit
    assert await broker.bounds() == (events[0].seq, stored[-1].seq)


async def test_retention_by_age(open_broker: OpenBroker) -> None:
    max_age = 0.1
    broker = await open_broker(max_age=max_age, dedup_window=max_age)
    stored = await publish(broker, "a", "b")
    start = time.monotonic()

    async def emptied() -> Bounds | None:
        bounds = await broker.bounds()
        return bounds if bounds.first > bounds.last else None

    bounds = await eventually(emptied, max_age / 4)
    assert time.monotonic() - start >= max_age * 0.9
    assert bounds == (stored[-1].seq + 1, stored[-1].seq)
    assert await broker.read([">"], 0, stored[-1].seq, 10) == ([], stored[-1].seq)


async def test_live_hands_every_event_after_the_start_once(
    open_broker: OpenBroker,
) -> None:
    broker = await open_broker()
    before = await publish(broker, "a", "b", "c")
    live = Collector()
    await broker.start_live(before[0].seq, live)
    after = await publish(broker, "d", "e")
    after += await publish(broker, "a.b")

    expected = seqs(before[1:] + after)
    assert seqs(await live.wait_for(len(expected))) == expected

    # A last event shows that nothing else was in flight before it.
    (sentinel,) = await publish(broker, "z")
    assert seqs(await live.wait_for(len(expected) + 1)) == [*expected, sentinel.seq]
    assert [e.json for e in live.events[2:-1]] == [e.json for e in after]


async def test_live_from_the_head_hands_only_new_events(
    open_broker: OpenBroker,
) -> None:
    broker = await open_broker()
    await publish(broker, "a", "b")
    live = Collector()
    await broker.start_live((await broker.bounds()).last, live)
    new = await publish(broker, "c")
    new += await publish(broker, *["d"] * 50)
    assert seqs(await live.wait_for(51)) == seqs(new)


async def test_live_skips_duplicates(open_broker: OpenBroker) -> None:
    broker = await open_broker()
    live = Collector()
    await broker.start_live(0, live)
    await broker.publish([draft("a", 1, "k"), draft("a", 2, "k")])
    await broker.publish([draft("a", 3, "k")])
    # Delivery is in order, so a duplicate would come before this last event.
    (sentinel,) = await publish(broker, "b")
    assert seqs(await live.wait_for(2)) == [sentinel.seq - 1, sentinel.seq]


async def test_instances_of_one_stream_agree(nats_url: str) -> None:
    stream = "T" + uuid.uuid4().hex[:12]
    one = NatsBroker(nats_url, stream=stream)
    two = NatsBroker(nats_url, stream=stream)
    try:
        await one.start()
        (event,) = await publish(one, "a")
        await two.start()
        assert two.epoch == one.epoch
        assert await two.bounds() == await one.bounds()
        events, _ = await two.read(["a"], 0, event.seq, 10)
        assert [e.json for e in events] == [event.json]
        await one.js.delete_stream(stream)
    finally:
        await one.close()
        await two.close()
