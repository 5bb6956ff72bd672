"""The bench's SSE and WebSocket subscribers reconnect, resume from their
cursor and count what they got, against a scripted loopback server.

Each scenario runs on a fresh loop of both kinds the bench may use: uvloop
when it is installed, asyncio's own otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import clients
import msgspec
import pytest
import uvloop

from tests.loadtests.fakes import (
    CLOSE,
    LAST_CHUNK,
    PING,
    PONG,
    TEXT,
    chunk,
    client_frames,
)
from tests.loadtests.fakes import frame as ws_frame
from tests.loadtests.loopback import PATIENCE, Loopback, Reply

Run = Callable[[Coroutine[Any, Any, None]], None]

OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
CHUNKED = OK + b"transfer-encoding: chunked\r\n\r\n"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a scenario to its end on a new loop of the given kind."""
    runner: Run = asyncio.run if request.param == "asyncio" else uvloop.run
    return runner


class Counts(msgspec.Struct):
    """The figures of `clients.Stats` a scenario checks, compared whole."""

    deliveries: int
    unique: int
    disordered: int
    gaps: int
    reconnects: int
    errors: int
    ready: int


async def subscribe(
    client: Callable[..., Coroutine[Any, Any, None]], target: clients.Target
) -> Counts:
    """Run one subscriber on topic `t` until it gives up; what it counted."""
    stats = clients.Stats()
    ready: list[None] = []
    async with asyncio.timeout(PATIENCE):
        await client(target, "t", clients.Tally(stats), lambda: ready.append(None))
    assert len(stats.latencies) == stats.deliveries
    return Counts(
        stats.deliveries,
        stats.unique,
        stats.disordered,
        stats.gaps,
        stats.reconnects,
        stats.errors,
        len(ready),
    )


def sse_event(seq: int) -> bytes:
    data = b'{"id":"1-%d","topic":"t","data":{"t":1.0,"n":%d}}' % (seq, seq)
    return chunk(b"id: 1-%d\nevent: message\ndata: %s\n\n" % (seq, data))


def ws_event(seq: int) -> bytes:
    pad = b"p" * 200 * (seq % 2)  # some frames take a 16-bit length
    data = b'{"op":"event","id":"1-%d","topic":"t","pad":"%s","data":{"t":1.0}}'
    return ws_frame(TEXT, data % (seq, pad))


def ws_close(code: int) -> bytes:
    return ws_frame(CLOSE, code.to_bytes(2, "big"))


def test_sse_resumes_from_the_last_event_after_any_end(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "MAX_RECONNECTS", 3)
    gap = chunk(b"id: 1-5\nevent: herald.gap\ndata: {}\n\n")
    script = [
        Reply(CHUNKED + sse_event(1) + sse_event(2) + sse_event(3) + LAST_CHUNK),
        Reply(CHUNKED + sse_event(4) + gap + sse_event(5), drop=True),
        Reply(BUSY),
        Reply(CHUNKED + sse_event(6) + LAST_CHUNK),
    ]

    async def scenario() -> None:
        async with Loopback(script) as server:
            counts = await subscribe(clients.sse, server.target)
        assert server.errors == []
        assert counts == Counts(6, 6, 0, 1, 3, 2, 3)
        assert server.heads[0] == (
            b"GET /v1/sse?topic=t HTTP/1.1\r\n"
            b"Host: %s\r\nAccept: text/event-stream" % server.target.netloc.encode()
        )
        assert [head.partition(b"Last-Event-ID: ")[2] for head in server.heads] == [
            b"",
            b"1-3",
            b"1-5",
            b"1-5",
        ]
        assert server.sent == [b""] * 4

    run(scenario())


def test_ws_resumes_from_its_cursor_and_counts_bad_closes(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "MAX_RECONNECTS", 3)
    ping = ws_frame(PING, b"p")
    script = [
        Reply(
            ws_event(1)
            + ping
            + ws_event(2)
            + ws_frame(TEXT, b'{"op":"ping"}')
            + ws_close(1001),
            upgrade=True,
        ),
        Reply(
            ws_event(3)
            + ws_frame(TEXT, b'{"op":"gap"}')
            + ws_event(4)
            + ws_close(1000),
            upgrade=True,
        ),
        Reply(ws_event(5) + ws_close(1008), upgrade=True),
        Reply(ws_event(6), upgrade=True, drop=True),
    ]

    async def scenario() -> None:
        async with Loopback(script) as server:
            counts = await subscribe(clients.ws, server.target)
        assert server.errors == []
        assert counts == Counts(6, 6, 0, 1, 3, 2, 4)
        assert [head.split(b" ")[1] for head in server.heads] == [
            b"/v1/ws?topic=t",
            b"/v1/ws?topic=t&cursor=1-2",
            b"/v1/ws?topic=t&cursor=1-4",
            b"/v1/ws?topic=t&cursor=1-5",
        ]
        assert [client_frames(sent) for sent in server.sent] == [
            [(PONG, b"p"), (CLOSE, b"\x03\xe9")],
            [(CLOSE, b"\x03\xe8")],
            [(CLOSE, b"\x03\xf0")],
            [],
        ]

    run(scenario())


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_refused_connections_count_as_errors(
    run: Run, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setattr(clients, "MAX_RECONNECTS", 1)
    client = clients.sse if transport == "sse" else clients.ws

    async def scenario() -> None:
        # A port that was just listening on loopback and now refuses.
        async with Loopback([]) as server:
            target = server.target
        assert await subscribe(client, target) == Counts(0, 0, 0, 0, 1, 2, 0)

    run(scenario())
