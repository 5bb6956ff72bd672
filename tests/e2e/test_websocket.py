"""WebSocket end to end: ops and answers, bad frames, close codes, slow readers."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import Herald, HeraldFactory

from .clients import (
    WAIT,
    call,
    fresh_topic,
    http,
    publish,
    recv,
    recv_event,
    seq,
    subscriptions,
    websocket,
)

CURSOR = re.compile(r"[0-9a-z]+-[0-9]+")


def event_of(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["op"] == "event", frame
    return {k: v for k, v in frame.items() if k != "op"}


async def assert_open(ws: Any) -> None:
    """The connection still answers: a ping gets its pong."""
    answer, _ = await call(ws, {"op": "ping", "ref": "still-open"})
    assert answer == {"op": "pong", "ref": "still-open"}


async def test_handshake_answer_means_subscribed(herald: Herald) -> None:
    topic = fresh_topic("ws.now")
    async with http(herald) as client, websocket(herald, topic) as ws:
        stored = await publish(client, topic, {"n": 1})
        event = event_of(await recv(ws))
        assert event == {**stored, "data": {"n": 1}}


async def test_subscribe_ack_means_subscribed(herald: Herald) -> None:
    topic = fresh_topic("ws.sub")
    async with http(herald) as client, websocket(herald) as ws:
        op = {"op": "subscribe", "topics": [topic], "ref": "s-1"}
        answer, before = await call(ws, op)
        assert answer == {"op": "ack", "ref": "s-1"}
        assert before == []

        stored = await publish(client, topic, "after the ack")
        assert (await recv_event(ws))["id"] == stored["id"]


async def test_subscribe_op_with_cursor_replays_after_it(herald: Herald) -> None:
    topic = fresh_topic("ws.cursor")
    async with http(herald) as client, websocket(herald) as ws:
        first, second = [await publish(client, topic, n) for n in range(2)]
        op = {"op": "subscribe", "topics": [topic], "cursor": first["id"], "ref": 1}
        answer, _ = await call(ws, op)
        assert answer == {"op": "ack", "ref": 1}
        assert (await recv_event(ws))["id"] == second["id"]


async def test_unsubscribe_stops_delivery(herald: Herald) -> None:
    dropped, kept = fresh_topic("ws.unsub"), fresh_topic("ws.unsub")
    async with http(herald) as client, websocket(herald) as ws:
        op = {"op": "subscribe", "topics": [dropped, kept], "ref": "s"}
        assert (await call(ws, op))[0]["op"] == "ack"
        op = {"op": "unsubscribe", "topics": [dropped], "ref": "u"}
        assert (await call(ws, op))[0] == {"op": "ack", "ref": "u"}

        await publish(client, dropped, "gone")
        stored = await publish(client, kept, "kept")
        assert (await recv_event(ws))["id"] == stored["id"]


async def test_publish_op_answers_the_event_id(herald: Herald) -> None:
    topic = fresh_topic("ws.pub")
    data = {"text": "héllo\u2028\x00😀", "list": [1, None]}
    async with websocket(herald, topic) as ws:
        op = {"op": "publish", "topic": topic, "type": "note", "data": data, "ref": 9}
        answer, before = await call(ws, op)
        assert answer["op"] == "ack" and answer["ref"] == 9
        assert CURSOR.fullmatch(answer["id"])
        event = event_of(before[0] if before else await recv(ws))
        assert event["id"] == answer["id"]
        assert (event["topic"], event["type"], event["data"]) == (topic, "note", data)


async def test_ping_gets_pong_with_or_without_ref(herald: Herald) -> None:
    async with websocket(herald) as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert await recv(ws) == {"op": "pong"}
        answer, _ = await call(ws, {"op": "ping", "ref": "p"})
        assert answer == {"op": "pong", "ref": "p"}


@pytest.mark.parametrize(
    ("frame", "status", "field"),
    [
        ("not json at all", 400, "frame"),
        ('{"op": "subscribe", "topics": [', 400, "frame"),
        ('{"op": "publish", "topic": "a", "data": "\\ud800"}', 400, "frame"),
        ('["op", "ping"]', 422, "frame"),
        ('{"topics": ["a"], "ref": 1}', 422, "op"),
        ('{"op": "shout", "ref": 1}', 422, "op"),
        ('{"op": "subscribe", "ref": 1}', 422, "topics"),
        ('{"op": "subscribe", "topics": "a.b", "ref": 1}', 422, "topics"),
        ('{"op": "subscribe", "topics": [], "ref": 1}', 400, "topics"),
        ('{"op": "subscribe", "topics": ["a..b"], "ref": 1}', 400, "topics"),
        ('{"op": "subscribe", "topics": ["a.>.b"], "ref": 1}', 400, "topics"),
        (
            '{"op": "subscribe", "topics": ["a"], "cursor": "x", "ref": 1}',
            400,
            "cursor",
        ),
        ('{"op": "unsubscribe", "ref": 1}', 422, "topics"),
        ('{"op": "publish", "topic": "a", "ref": 1}', 422, "data"),
        ('{"op": "publish", "topic": "a.*", "data": 1, "ref": 1}', 400, "topic"),
        ('{"op": "publish", "topic": 5, "data": 1, "ref": 1}', 422, "topic"),
        (
            '{"op": "publish", "topic": "a", "data": 1, "type": "herald.x", "ref": 1}',
            400,
            "type",
        ),
        (
            '{"op": "publish", "topic": "a", "data": 1, "type": "a\\nb", "ref": 1}',
            400,
            "type",
        ),
        ('{"op": "ping", "ref": 1, "extra": true}', 422, "extra"),
        ('{"op": "ping", "ref": [1]}', 422, "ref"),
    ],
)
async def test_malformed_frame_gets_an_error_and_the_connection_stays(
    herald: Herald, frame: str, status: int, field: str
) -> None:
    async with websocket(herald) as ws:
        await ws.send(frame)
        error = await recv(ws)
        assert error["op"] == "error", error
        assert error["status"] == status
        assert field in error["detail"], error
        if '"ref": 1' in frame:
            assert error.get("ref") == 1, error
        await assert_open(ws)


async def test_publish_op_over_the_data_limit_is_refused(herald: Herald) -> None:
    data = "x" * (64 * 1024)  # 65538 bytes encoded, in a frame under the limit
    async with websocket(herald) as ws:
        op = {"op": "publish", "topic": "a", "data": data, "ref": "big"}
        error, _ = await call(ws, op)
        assert error["op"] == "error" and error["status"] == 413
        assert "data" in error["detail"]
        await assert_open(ws)


async def test_bad_query_pattern_gets_an_error_frame(herald: Herald) -> None:
    async with websocket(herald, "a..b") as ws:
        error = await recv(ws)
        assert error["op"] == "error" and error["status"] == 400
        assert "topic" in error["detail"]
        await assert_open(ws)


async def closed(ws: Any) -> tuple[int, str]:
    """Wait for the server's close frame; return its code and reason."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT):
            for _ in range(10_000):
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def test_binary_frame_closes_with_1003(herald: Herald) -> None:
    async with websocket(herald) as ws:
        await ws.send(b'{"op": "ping"}')
        assert await closed(ws) == (1003, "binary frames are not supported")


@pytest.mark.parametrize(
    "frame",
    [
        "x" * (64 * 1024 + 4096 + 1),
        "é" * 40_000,  # 40000 characters, 80000 bytes in UTF-8
    ],
)
async def test_frame_over_the_limit_closes_with_1009(
    herald: Herald, frame: str
) -> None:
    async with websocket(herald) as ws:
        await ws.send(frame)
        assert await closed(ws) == (1009, "frame over 69632 bytes")


async def test_frame_at_the_limit_is_read(herald: Herald) -> None:
    async with websocket(herald) as ws:
        await ws.send("x" * (64 * 1024 + 4096))
        error = await recv(ws)
        assert error["op"] == "error" and "frame" in error["detail"]
        await assert_open(ws)


async def test_one_connection_carries_twenty_topics(herald: Herald) -> None:
    topics = [fresh_topic(f"ws.many{i}") for i in range(20)]
    other = fresh_topic("ws.many")
    async with http(herald) as client, websocket(herald, *topics[:10]) as ws:
        op = {"op": "subscribe", "topics": topics[10:], "ref": "rest"}
        assert (await call(ws, op))[0]["op"] == "ack"
        sent = []
        for topic in topics:
            sent.append(await publish(client, topic, topic))
            await publish(client, other, "not subscribed")
        got = [await recv_event(ws) for _ in topics]
        assert [e["id"] for e in got] == [e["id"] for e in sent]
        assert [e["topic"] for e in got] == topics


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("{p}.*.x", ["{p}.a.x", "{p}.b_c.x"], ["{p}.a.y", "{p}.a.b.x", "{p}.x"]),
        ("{p}.>", ["{p}.a", "{p}.a.b.c"], ["{p}", "{p}x.a", "other.{p}.a"]),
        ("*.*.{p}", ["a.b.{p}"], ["a.{p}", "a.b.c.{p}"]),
    ],
)
async def test_wildcard_patterns(
    herald: Herald, pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    prefix = fresh_topic("ws").replace(".", "_")
    async with http(herald) as client, websocket(herald) as ws:
        op = {"op": "subscribe", "topics": [pattern.format(p=prefix)], "ref": 0}
        assert (await call(ws, op))[0]["op"] == "ack"
        wanted = []
        for topic in [*not_matching, *matching]:
            stored = await publish(client, topic.format(p=prefix), "x")
            if topic in matching:
                wanted.append(stored["id"])
        marker = await publish(client, matching[0].format(p=prefix), "marker")
        got = [(await recv_event(ws))["id"] for _ in range(len(wanted) + 1)]
        assert got == [*wanted, marker["id"]]


@pytest.fixture(scope="module")
def tiny_queue(start_herald: HeraldFactory) -> Herald:
    return start_herald(queue_events=5)


def small_buffer_socket(server: Herald) -> socket.socket:
    """A connected socket with a small receive buffer, so a stalled reader
    stalls the server sooner."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    return sock


async def test_slow_subscriber_closed_with_1013_others_get_everything(
    tiny_queue: Herald,
) -> None:
    topic = fresh_topic("ws.slow")
    padding = "p" * 50_000
    sock = small_buffer_socket(tiny_queue)
    async with (
        http(tiny_queue) as client,
        websocket(tiny_queue, topic, sock=sock, max_queue=1) as stalled,
        websocket(tiny_queue, topic, max_size=None) as reader,
    ):
        received: list[str] = []

        async def read(count: int) -> None:
            while len(received) < count:
                received.append((await recv_event(reader))["id"])

        # `stalled` is not read while events pile up; `reader` keeps up.
        sent: list[str] = []
        async with asyncio.timeout(60):
            for i in range(1000):
                sent.append((await publish(client, topic, [i, padding]))["id"])
                await read(len(sent))
                if i % 20 == 19 and await subscriptions(client) < 2:
                    break
        assert await subscriptions(client) == 1, "the stalled socket was not closed"
        assert received == sent

        got = []
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT * 3):
                for _ in sent:
                    got.append((await recv_event(stalled))["id"])
        assert stalled.close_code == 1013
        assert stalled.close_reason == "subscriber too slow, resume from your cursor"
        assert 0 < len(got) < len(sent)
        assert got == sent[: len(got)]
        assert got == sorted(got, key=seq)


async def test_patterns_are_bounded_per_connection(start_herald: HeraldFactory) -> None:
    server = start_herald(max_topics=5)
    async with websocket(server, "t.0", "t.1") as ws:
        op = {"op": "subscribe", "topics": ["t.2", "t.3", "t.4"], "ref": "fits"}
        ack, _ = await call(ws, op)
        assert ack["op"] == "ack"

        # One op at a time must not get past the connection's limit.
        op = {"op": "subscribe", "topics": ["t.5"], "ref": "over"}
        error, _ = await call(ws, op)
        assert error["op"] == "error" and error["status"] == 400
        assert "topics" in error["detail"] and "5 held" in error["detail"]

        await call(ws, {"op": "unsubscribe", "topics": ["t.0"], "ref": "u"})
        ack, _ = await call(ws, {**op, "ref": "room"})
        assert ack["op"] == "ack"
        await assert_open(ws)


async def test_deeply_nested_publish_frame_gets_an_error(herald: Herald) -> None:
    data = "[" * 2000 + "]" * 2000
    frame = '{"op": "publish", "topic": "a", "ref": 7, "data": ' + data + "}"
    async with websocket(herald) as ws:
        await ws.send(frame)
        error = await recv(ws)
        assert error["op"] == "error" and error["status"] == 400, error
        # Too deep to read even the ref: the error comes without it.
        assert error["detail"] == "frame: JSON nested too deeply", error
        await assert_open(ws)
