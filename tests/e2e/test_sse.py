"""SSE end to end: framing, exact data, pings, Last-Event-ID, patterns, slow readers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.conftest import Herald, HeraldFactory

from .clients import (
    EndOfStream,
    SseStream,
    fresh_topic,
    http,
    metric,
    publish,
    sse,
    subscriptions,
)

PAYLOADS: list[Any] = [
    "plain ascii",
    "café, Straße, Ελληνικά, 日本語, עברית",
    "line\u2028separator and paragraph\u2029separator",
    "emoji 😀🎉👍🏽 and a flag 🇪🇺",
    "CR\rLF\nCRLF\r\nend",
    "NUL\x00inside",
    "\r\n\r\n",
    "",
    {"nested": {"list": [1, 2.5, None, True, False, "x"], "empty": {}, "e": []}},
    [[[["deep"]]], {"\u2028key\n": "\x00"}],
    0,
    -17,
    123456789012345678901234567890,
    0.1,
    None,
]


def block(stream: SseStream, event_id: str) -> list[str]:
    """The field lines of the raw block that carries `event_id`."""
    start = stream.raw.index(f"id: {event_id}\n")
    end = stream.raw.index("\n\n", start)
    return stream.raw[start:end].split("\n")


async def test_headers_come_first_then_retry_then_events(herald: Herald) -> None:
    topic = fresh_topic("sse.open")
    async with http(herald) as client, sse(client, topic) as stream:
        headers = stream.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"

        await stream.until(lambda: "\n" in stream.raw)
        assert re.fullmatch(r"retry: \d+", stream.raw.split("\n", 1)[0])
        assert "id:" not in stream.raw

        # Subscribed before the headers: this publish must arrive.
        stored = await publish(client, topic, {"after": "headers"})
        message, event = await stream.event()
        assert message.id == stored["id"]
        assert event["data"] == {"after": "headers"}


async def test_each_event_is_id_event_data_and_a_blank_line(herald: Herald) -> None:
    topic = fresh_topic("sse.frame")
    async with http(herald) as client, sse(client, topic) as stream:
        typed = await publish(client, topic, [1], type_="order.created-v2")
        plain = await publish(client, topic, [2])

        for stored, kind, data in (
            (typed, "order.created-v2", [1]),
            (plain, "message", [2]),
        ):
            message, event = await stream.event()
            assert message.id == stored["id"]
            assert message.event == kind
            assert event == {**stored, "data": data}
            assert set(event) == {"id", "type", "topic", "time", "data"}
            assert event["time"].endswith("Z")
            lines = block(stream, stored["id"])
            assert lines == [
                f"id: {stored['id']}",
                f"event: {kind}",
                f"data: {message.data}",
            ]


async def test_data_arrives_exactly_as_published(herald: Herald) -> None:
    topic = fresh_topic("sse.data")
    async with http(herald) as client, sse(client, topic) as stream:
        ids = [(await publish(client, topic, data))["id"] for data in PAYLOADS]
        for event_id, data in zip(ids, PAYLOADS, strict=True):
            message, event = await stream.event()
            assert message.id == event_id
            assert event["data"] == data
            assert len(block(stream, event_id)) == 3  # one data line, whatever data


@pytest.fixture(scope="module")
def pinging(start_herald: HeraldFactory) -> Herald:
    return start_herald(ping_interval=0.5)


async def test_idle_stream_gets_ping_comments(pinging: Herald) -> None:
    topic = fresh_topic("sse.ping")
    async with http(pinging) as client, sse(client, topic) as stream:
        await stream.until(lambda: len(stream.parser.comments) >= 2, wait=5)
        assert stream.parser.comments[:2] == ["ping", "ping"]

        stored = await publish(client, topic, "still there")
        message, _ = await stream.event()
        assert message.id == stored["id"]


async def test_last_event_id_takes_precedence_over_cursor(herald: Herald) -> None:
    topic = fresh_topic("sse.resume")
    async with http(herald) as client:
        first, second, third = [await publish(client, topic, n) for n in range(3)]

        async with sse(client, topic, cursor=first["id"]) as stream:
            message, _ = await stream.event()
            assert message.id == second["id"]

        headers = {"Last-Event-ID": second["id"]}
        async with sse(client, topic, cursor=first["id"], headers=headers) as stream:
            message, _ = await stream.event()
            assert message.id == third["id"]


async def test_one_stream_carries_twenty_topics(herald: Herald) -> None:
    topics = [fresh_topic(f"sse.many{i}") for i in range(20)]
    other = fresh_topic("sse.many")
    async with http(herald) as client, sse(client, *topics) as stream:
        sent = []
        for topic in topics:
            sent.append(await publish(client, topic, topic))
            await publish(client, other, "not subscribed")
        got = [(await stream.event())[1] for _ in topics]
        assert [e["id"] for e in got] == [e["id"] for e in sent]
        assert [e["data"] for e in got] == topics


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("{p}.*.x", ["{p}.a.x", "{p}.b-c.x"], ["{p}.a.y", "{p}.a.b.x", "{p}.x"]),
        ("{p}.>", ["{p}.a", "{p}.a.b.c"], ["{p}", "{p}x.a", "other.{p}.a"]),
        ("*.{p}", ["a.{p}"], ["{p}", "a.b.{p}"]),
    ],
)
async def test_wildcard_patterns(
    herald: Herald, pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    prefix = fresh_topic("sse").replace(".", "_")
    pattern = pattern.format(p=prefix)
    async with http(herald) as client, sse(client, pattern) as stream:
        wanted = []
        for topic in [*not_matching, *matching]:
            stored = await publish(client, topic.format(p=prefix), "x")
            if topic in matching:
                wanted.append(stored["id"])
        got = [(await stream.next()).id for _ in wanted]
        assert got == wanted

        # Nothing else is queued: the next event is this marker.
        marker = await publish(client, matching[0].format(p=prefix), "marker")
        assert (await stream.next()).id == marker["id"]


@pytest.fixture(scope="module")
def tiny_queue(start_herald: HeraldFactory) -> Herald:
    return start_herald(queue_events=5)


async def test_slow_stream_ends_cleanly_and_others_get_everything(
    tiny_queue: Herald,
) -> None:
    topic = fresh_topic("sse.slow")
    padding = "p" * 50_000
    async with (
        http(tiny_queue) as client,
        client.stream("GET", "/v1/sse", params={"topic": topic}) as stalled,
        sse(client, topic) as reader,
    ):
        # Nobody reads `stalled` while events pile up behind it; `reader`
        # reads all the time.
        assert stalled.status_code == 200
        assert await subscriptions(client) == 2
        slow_before = await metric(client, "herald_slow_disconnects_total")
        delivered_before = await metric(client, "herald_deliveries_total")
        sent = []
        async with asyncio.timeout(60):
            for i in range(1000):
                sent.append((await publish(client, topic, [i, padding]))["id"])
                if i % 20 == 19 and await subscriptions(client) < 2:
                    break
        assert await subscriptions(client) == 1, "the stalled stream never ended"
        sent.append((await publish(client, topic, "marker"))["id"])

        received = [(await reader.next()).id for _ in sent]
        assert received == sent
        assert await metric(client, "herald_slow_disconnects_total") == slow_before + 1
        # Every event reached `reader`; the stalled one got some until it ended.
        delivered = await metric(client, "herald_deliveries_total") - delivered_before
        assert len(sent) < delivered < 2 * len(sent)

        late = SseStream(stalled)
        got = []
        for _ in sent:
            try:
                got.append((await late.next()).id)
            except EndOfStream:
                break
        assert late.ended
        assert 0 < len(got) < len(sent)
        assert got == sent[: len(got)]
        assert late.parser.comments[-1] == "subscriber too slow"
