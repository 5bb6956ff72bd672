"""The hub over a MemoryBroker: open, replay, live hand-over, gaps, slow ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from service.broker import Bounds, Draft
from service.broker.memory import MemoryBroker
from service.connection import Connection
from service.cursor import Cursor
from service.errors import EndReason
from service.event import Event, encode, encode_body, now_rfc3339
from service.hub import Hub, InstanceFull
from service.subscription import Gap, Item, Subscription
from service.topics import pattern_matches


class CountingBroker(MemoryBroker):
    """A MemoryBroker that counts history reads, to tell the hub's paths apart."""

    def __init__(self, **limits: Any) -> None:
        super().__init__(**limits)
        self.reads = 0
        self.bounds_asked = 0

    async def bounds(self) -> Bounds:
        self.bounds_asked += 1
        return await super().bounds()

    async def read(
        self, patterns: Sequence[str], after: int, until: int, limit: int
    ) -> tuple[list[Event], int]:
        self.reads += 1
        return await super().read(patterns, after, until, limit)


async def start_hub(broker: MemoryBroker | None = None, **options: Any) -> Hub:
    hub = Hub(broker or CountingBroker(), **options)
    await hub.start()
    return hub


async def publish(hub: Hub, *topics: str) -> list[Event]:
    drafts = [
        Draft(t, encode_body(t, "message", encode(i), now_rfc3339()))
        for i, t in enumerate(topics)
    ]
    return [p.event for p in await hub.broker.publish(drafts)]


async def drain(
    hub: Hub,
    sub: Subscription,
    limit: int = 100,
    between: Callable[[], Awaitable[object]] | None = None,
) -> list[Item]:
    """Everything `sub` has ready, page by page as a transport takes it."""
    items: list[Item] = []
    for _ in range(10_000):
        if not sub.ready:
            return items
        page = await hub.next(sub, limit)
        assert len([i for i in page if isinstance(i, Event)]) <= limit
        items.extend(page)
        if between is not None:
            await between()
    raise AssertionError("subscription never ran dry")


def seqs(items: Sequence[Item]) -> list[int]:
    assert not any(isinstance(i, Gap) for i in items), items
    return [i.seq for i in items if isinstance(i, Event)]


def matching(events: Sequence[Event], patterns: Sequence[str], after: int) -> list[int]:
    return [
        e.seq
        for e in events
        if e.seq > after and any(pattern_matches(p, e.topic) for p in patterns)
    ]


TOPICS = ["a.b.c", "a.x.c", "a.b.d", "z", "a.b", "a.b.c"]


async def test_open_without_cursor_starts_at_the_head() -> None:
    hub = await start_hub()
    await publish(hub, "a", "a", "b")
    conn = Connection("sse")
    sub = await hub.open(["a"], None, conn)

    assert sub.cursor == f"{hub.epoch}-3"
    assert not sub.ready
    assert not conn.wake.is_set()

    new = await publish(hub, "a", "b", "a")
    assert conn.wake.is_set()
    assert seqs(await drain(hub, sub)) == [new[0].seq, new[2].seq]
    assert sub.cursor == f"{hub.epoch}-{new[2].seq}"


async def test_hub_started_on_a_full_log_begins_at_its_end() -> None:
    broker = CountingBroker()
    hub = Hub(broker)
    await publish(hub, "a", "a")
    await hub.start()
    assert hub.head == 2
    sub = await hub.open(["a"], None, Connection("ws"))
    assert sub.cursor == f"{hub.epoch}-2"
    assert seqs(await drain(hub, sub)) == []


@pytest.mark.parametrize("cache_events", [10_000, 4])
@pytest.mark.parametrize("patterns", [["a.b.c"], ["a.*.c", "a.b.*"], [">"]])
@pytest.mark.parametrize("limit", [1, 3, 100])
async def test_replay_then_live_without_gap_or_duplicate(
    cache_events: int, patterns: list[str], limit: int
) -> None:
    hub = await start_hub(cache_events=cache_events)
    broker = hub.broker
    assert isinstance(broker, CountingBroker)
    log = await publish(hub, *TOPICS * 5)
    conn = Connection("ws")
    sub = await hub.open(patterns, Cursor(hub.epoch, 5), conn)
    assert conn.wake.is_set()

    async def publish_while_replaying() -> None:
        if len(log) < 60:
            log.extend(await publish(hub, *TOPICS))

    items = await drain(hub, sub, limit, publish_while_replaying)
    assert len(log) >= 36
    assert seqs(items) == matching(log, patterns, 5)
    assert sub.cursor == f"{hub.epoch}-{seqs(items)[-1]}"
    assert (broker.reads > 0) is (cache_events < len(log))

    # Replay is over: new events arrive through the queue.
    later = await publish(hub, *TOPICS)
    assert seqs(await drain(hub, sub, limit)) == matching(later, patterns, 0)


@pytest.mark.parametrize("patterns", [["a.*.c", "a.b.*"], ["z", "a.b"], [">"]])
@pytest.mark.parametrize("cursor", [0, 7, 29])
async def test_cache_and_broker_give_the_same_replay(
    patterns: list[str], cursor: int
) -> None:
    async def replay(cache_events: int) -> tuple[list[Item], list[int], int]:
        hub = await start_hub(cache_events=cache_events)
        log = await publish(hub, *TOPICS * 5)
        sub = await hub.open(patterns, Cursor(hub.epoch, cursor), Connection("poll"))
        items = await drain(hub, sub, limit=2)
        assert isinstance(hub.broker, CountingBroker)
        return items, matching(log, patterns, cursor), hub.broker.reads

    cached, expected, cache_reads = await replay(10_000)
    read, _, broker_reads = await replay(2)
    assert (cache_reads, broker_reads > 0) == (0, cursor < 28)
    assert seqs(cached) == seqs(read) == expected
    topics = [[i.topic for i in r if isinstance(i, Event)] for r in (cached, read)]
    assert topics[0] == topics[1]


async def test_gap_when_the_cursor_is_older_than_retention() -> None:
    broker = CountingBroker(max_per_topic=3)
    hub = Hub(broker)
    await publish(hub, *["a"] * 10)
    await hub.start()
    e = hub.epoch

    conn = Connection("sse")
    sub = await hub.open(["a"], Cursor(e, 2), conn)
    assert conn.wake.is_set()
    items = await drain(hub, sub)
    assert items[0] == Gap(f"{e}-2", f"{e}-7")
    assert seqs(items[1:]) == [8, 9, 10]

    (new,) = await publish(hub, "a")
    assert seqs(await drain(hub, sub)) == [new.seq]


async def test_a_cursor_behind_the_head_resumes_from_the_cache_alone() -> None:
    broker = CountingBroker()
    hub = await start_hub(broker)
    events = await publish(hub, "a", "b", "a", "a")
    asked = broker.bounds_asked

    sub = await hub.open(["a"], Cursor(hub.epoch, events[0].seq), Connection("poll"))
    assert seqs(await drain(hub, sub)) == [events[2].seq, events[3].seq]
    assert (broker.bounds_asked, broker.reads) == (asked, 0)


async def test_the_cache_does_not_vouch_past_the_per_topic_limit() -> None:
    broker = CountingBroker(max_per_topic=2)
    hub = await start_hub(broker)
    events = await publish(hub, "a", "a", "a", "b")
    asked = broker.bounds_asked

    # Three `a` events after the cursor: the log kept two, so ask the broker.
    sub = await hub.open(["a"], Cursor(hub.epoch, 0), Connection("poll"))
    items = await drain(hub, sub)
    assert broker.bounds_asked == asked + 1
    assert isinstance(items[0], Gap)
    assert seqs(items[1:]) == [events[1].seq, events[2].seq]


@pytest.mark.parametrize("cache_events", [10_000, 2])
async def test_gap_is_the_same_whether_the_cache_holds_the_events(
    cache_events: int,
) -> None:
    # Started before the publishes, the hub's cache saw every event, even
    # those retention has since dropped; the answer must not depend on it.
    hub = await start_hub(CountingBroker(max_per_topic=3), cache_events=cache_events)
    await publish(hub, *["a"] * 10)
    e = hub.epoch

    sub = await hub.open(["a"], Cursor(e, 2), Connection("poll"))
    items = await drain(hub, sub, limit=2)
    assert items[0] == Gap(f"{e}-2", f"{e}-7")
    assert seqs(items[1:]) == [8, 9, 10]


async def test_gap_when_the_cursor_is_from_another_epoch() -> None:
    broker = CountingBroker()
    hub = Hub(broker)
    await publish(hub, "a", "b", "a")
    await hub.start()
    e = hub.epoch

    sub = await hub.open(["a"], Cursor("old", 2), Connection("ws"))
    items = await drain(hub, sub)
    assert items[0] == Gap("old-2", f"{e}-0")
    assert seqs(items[1:]) == [1, 3]


async def test_gap_comes_even_when_nothing_is_left_to_replay() -> None:
    broker = CountingBroker(max_per_topic=1)
    hub = Hub(broker)
    await publish(hub, "a", "a")
    await hub.start()
    e = hub.epoch

    sub = await hub.open(["b"], Cursor(e, 0), Connection("poll"))
    items = await drain(hub, sub)
    assert items == [Gap(f"{e}-0", f"{e}-1")]
    assert sub.cursor == f"{e}-2"


async def test_no_gap_at_the_edge_of_retention() -> None:
    broker = CountingBroker(max_per_topic=3)
    hub = Hub(broker)
    await publish(hub, *["a"] * 10)
    await hub.start()

    sub = await hub.open(["a"], Cursor(hub.epoch, 7), Connection("sse"))
    assert seqs(await drain(hub, sub)) == [8, 9, 10]


async def test_gap_when_per_topic_retention_dropped_what_the_cursor_wants() -> None:
    broker = CountingBroker(max_per_topic=2)
    hub = Hub(broker)
    await publish(hub, "a", "b", "a", "a", "a")
    await hub.start()
    e = hub.epoch

    # Event 3 on `a` is gone, though the log still starts at 2 (on `b`).
    sub = await hub.open(["a"], Cursor(e, 1), Connection("sse"))
    items = await drain(hub, sub)
    assert isinstance(items[0], Gap)
    assert [i.seq for i in items[1:] if isinstance(i, Event)] == [4, 5]


async def test_overlapping_patterns_get_each_live_event_once() -> None:
    hub = await start_hub()
    sub = await hub.open(["a.*", "a.b", ">"], None, Connection("ws"))
    events = await publish(hub, "a.b", "a.c", "x", "a.b")
    assert seqs(await drain(hub, sub)) == [e.seq for e in events]


async def test_live_pages_respect_the_limit() -> None:
    hub = await start_hub()
    sub = await hub.open(["a"], None, Connection("ws"))
    events = await publish(hub, *["a"] * 5)
    assert seqs(await hub.next(sub, 2)) == [1, 2]
    assert seqs(await drain(hub, sub, limit=2)) == [e.seq for e in events[2:]]


async def test_slow_subscriber_is_ended_and_removed() -> None:
    hub = await start_hub(queue_events=3)
    fast_conn, slow_conn = Connection("sse"), Connection("ws")
    fast = await hub.open(["t"], None, fast_conn)
    slow = await hub.open(["t", "u.>"], None, slow_conn)

    got: list[Item] = []
    events: list[Event] = []
    for _ in range(10):
        events += await publish(hub, "t")
        got += await drain(hub, fast)
        if len(events) == 3:
            assert slow.ended is None

    assert slow.ended is EndReason.SLOW
    assert slow not in hub.subscriptions
    assert slow_conn.wake.is_set()
    assert not slow.queue
    assert seqs(await drain(hub, slow)) == []

    assert fast.ended is None
    assert hub.subscriptions == {fast}
    assert seqs(got) == [e.seq for e in events]
    assert not list(hub._trie.match("u.v"))


async def test_subscriber_over_its_queue_bytes_is_slow() -> None:
    hub = await start_hub(queue_bytes=150)
    fast = await hub.open(["t"], None, Connection("sse"))
    slow = await hub.open(["t"], None, Connection("sse"))
    got: list[Item] = []
    for _ in range(4):
        await publish(hub, "t")
        got += await drain(hub, fast)
        assert slow.ended is None or len(got) > 2
    assert slow.ended is EndReason.SLOW
    assert seqs(got) == [1, 2, 3, 4]


async def test_subscriber_that_falls_behind_while_replaying_is_slow() -> None:
    hub = await start_hub(queue_events=2)
    await publish(hub, *["t"] * 5)
    sub = await hub.open(["t"], Cursor(hub.epoch, 0), Connection("ws"))
    await publish(hub, "t", "t")
    assert sub.ended is None
    await publish(hub, "t")
    assert sub.ended is EndReason.SLOW
    assert sub not in hub.subscriptions


async def test_unsubscribe() -> None:
    hub = await start_hub()
    sub = await hub.open(["a", "b", "c.*"], None, Connection("ws"))

    hub.unsubscribe(sub, ["a", "not-there"])
    assert sub.patterns == ["b", "c.*"]
    events = await publish(hub, "a", "b", "c.d")
    assert seqs(await drain(hub, sub)) == [events[1].seq, events[2].seq]

    hub.unsubscribe(sub, ["b", "c.*"])
    assert sub.ended is EndReason.CLIENT_GONE
    assert sub not in hub.subscriptions
    assert not hub._trie
    await publish(hub, "b")
    assert seqs(await drain(hub, sub)) == []


async def test_close_is_safe_twice() -> None:
    hub = await start_hub()
    sub = await hub.open(["a"], None, Connection("ws"))
    hub.close(sub)
    hub.close(sub, EndReason.DRAIN)
    assert sub.ended is EndReason.CLIENT_GONE
    assert not hub.subscriptions


async def test_end_all_drains_every_subscription() -> None:
    hub = await start_hub()
    conns = [hub.connect("sse"), hub.connect("ws"), hub.connect("poll")]
    subs = [
        await hub.open(["a"], None, conns[0]),
        await hub.open([">"], None, conns[1]),
    ]
    await publish(hub, "a")
    for conn in conns:
        conn.wake.clear()

    hub.end_all(EndReason.DRAIN)
    assert [s.ended for s in subs] == [EndReason.DRAIN, EndReason.DRAIN]
    assert all(not s.queue for s in subs)
    assert not hub.subscriptions
    assert not hub._trie
    assert all(c.wake.is_set() for c in conns)


async def test_stop_drains() -> None:
    hub = await start_hub()
    sub = await hub.open(["a"], None, Connection("sse"))
    await hub.stop()
    assert sub.ended is EndReason.DRAIN


async def test_connections_are_counted_and_bounded() -> None:
    hub = await start_hub(max_connections=2)
    await hub.wait_idle()
    one, two = hub.connect("sse"), hub.connect("ws")
    assert one.transport == "sse"
    with pytest.raises(InstanceFull):
        hub.connect("poll")

    hub.disconnect(one)
    three = hub.connect("poll")
    hub.disconnect(two)
    assert not hub._idle.is_set()
    hub.disconnect(three)
    hub.disconnect(three)
    await hub.wait_idle()
    assert not hub.connections


def test_hang_up_wakes_the_connection() -> None:
    conn = Connection("ws")
    conn.ping_due = True
    conn.wrote()
    assert not conn.ping_due
    conn.hang_up()
    assert conn.gone
    assert conn.wake.is_set()


async def test_silent_connections_are_woken_to_ping() -> None:
    hub = await start_hub()
    quiet, busy = hub.connect("ws"), hub.connect("sse")
    quiet.written -= 60
    hub.start_pings(0.02)
    try:
        async with asyncio.timeout(5):
            await quiet.wake.wait()
    finally:
        await hub.stop()
    assert quiet.ping_due
    assert not busy.ping_due or busy.wake.is_set()


async def test_recent_answers_from_the_cache_or_not_at_all() -> None:
    broker = CountingBroker(max_per_topic=2)
    hub = await start_hub(broker)
    events = await publish(hub, "a", "b", "a")
    e = hub.epoch

    hit = hub.recent(["a"], Cursor(e, events[0].seq), limit=10)
    assert hit is not None
    assert (seqs(hit[0]), hit[1]) == ([events[2].seq], Cursor(e, hub.head))
    limited = hub.recent(["a", "b"], Cursor(e, 0), limit=1)
    assert limited is not None and limited[1] == Cursor(e, events[0].seq)

    # Nothing new, a foreign epoch, or more than the log keeps: no answer.
    assert hub.recent(["a"], Cursor(e, hub.head), limit=10) is None
    assert hub.recent(["a"], Cursor("old", 0), limit=10) is None
    await publish(hub, "a")
    assert hub.recent(["a"], Cursor(e, 0), limit=10) is None
    assert broker.reads == 0


class Sink:
    """A transport's direct writer that is free or busy as the test says."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.busy = False

    def __call__(self, event: Event) -> bool:
        if self.busy:
            return False
        self.written.append(event.seq)
        return True


async def test_a_caught_up_subscription_hands_live_events_to_its_sink() -> None:
    hub = await start_hub()
    conn = Connection("sse")
    sub = await hub.open(["t"], None, conn)
    sink = sub.sink = Sink()

    events = await publish(hub, "t", "u", "t")
    assert sink.written == [events[0].seq, events[2].seq]
    assert not sub.ready and not conn.wake.is_set()
    assert sub.cursor == f"{hub.epoch}-{events[2].seq}"


async def test_a_busy_sink_queues_and_nothing_skips_the_queue() -> None:
    hub = await start_hub()
    conn = Connection("ws")
    sub = await hub.open(["t"], None, conn)
    sink = sub.sink = Sink()

    first = await publish(hub, "t")
    sink.busy = True
    queued = await publish(hub, "t", "t")
    assert conn.wake.is_set()
    # Free again, but events are queued: they must go first, in order.
    sink.busy = False
    later = await publish(hub, "t")
    assert sink.written == [first[0].seq]
    assert seqs(await drain(hub, sub)) == [e.seq for e in queued + later]

    # The queue is empty again: the sink takes over.
    last = await publish(hub, "t")
    assert sink.written == [first[0].seq, last[0].seq]


async def test_no_sink_while_replaying_or_with_a_gap_due() -> None:
    hub = Hub(CountingBroker(max_per_topic=3))
    await publish(hub, *["t"] * 5)
    await hub.start()
    replaying = await hub.open(["t"], Cursor(hub.epoch, 3), Connection("sse"))
    gapped = await hub.open(["t"], Cursor(hub.epoch, 0), Connection("sse"))
    assert replaying.gap is None and gapped.gap is not None
    sinks = []
    for sub in (replaying, gapped):
        sub.sink = Sink()
        sinks.append(sub.sink)

    live = await publish(hub, "t")
    assert [s.written for s in sinks] == [[], []]
    assert seqs(await drain(hub, replaying)) == [4, 5, live[0].seq]
    items = await drain(hub, gapped)
    assert isinstance(items[0], Gap)
    assert seqs(items[1:]) == [4, 5, live[0].seq]

    after = await publish(hub, "t")
    assert [s.written for s in sinks] == [[after[0].seq]] * 2
