"""`SseStream` turns any cut of a chunked (or unchunked) SSE answer into the
same events, and ends with the error a broken answer deserves."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sse_stream import SseStream
from stream import HttpError

from tests.loadtests.fakes import LAST_CHUNK, Cut, FakeTransport, chunk, outcome

REQUEST = b"GET /v1/sse?topic=t HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: Chunked\r\n\r\n"
)
UNCHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


class Reader:
    """An `SseStream` on a fake transport, and the events it handed on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.stream = SseStream(REQUEST, self.handle)
        self.transport = FakeTransport()
        self.stream.connection_made(self.transport)

    def handle(self, kind: str, data: bytes, now: float) -> None:
        assert now > 0
        self.events.append((kind, data))

    def feed(self, reads: Sequence[bytes], lost: bool = False) -> None:
        for data in reads:
            self.stream.data_received(data)
        if lost:
            self.stream.connection_lost(None)

    def outcomes(self) -> tuple[object, object]:
        return outcome(self.stream.opened), outcome(self.stream.ended)


def event(seq: int) -> bytes:
    return b'id: 1-%d\nevent: message\ndata: {"n":%d}\n\n' % (seq, seq)


async def test_sends_its_request_once_connected() -> None:
    reader = Reader()

    assert reader.transport.written == [REQUEST]
    assert not reader.stream.opened.done()


async def test_chunked_events_come_out_whole_however_cut(cut: Cut) -> None:
    reader = Reader()
    long_data = b"L" * 300  # a three-digit chunk size
    writes = [
        CHUNKED,
        chunk(b"retry: 1000\n\n"),
        chunk(b": ping\n\n"),
        *(chunk(event(seq)) for seq in (1, 2, 3)),
        chunk(b"id: 1-3\nevent: herald.gap\ndata: {}\n\n"),
        chunk(b"id: 1-4\nevent: mes"),  # one event over two chunks
        chunk(b"sage\ndata: x\n\n"),
        chunk(b"data: y\n\ndata: z\n\n"),  # two events in one chunk
        chunk(b"data: a\ndata: b\n\n", extension=b";note=1"),
        chunk(b"data: " + long_data + b"\n\n"),
        LAST_CHUNK,
        chunk(b"data: late\n\n"),  # after the end: not read
    ]

    reader.feed(cut(writes))

    assert reader.events == [
        ("message", b'{"n":1}'),
        ("message", b'{"n":2}'),
        ("message", b'{"n":3}'),
        ("herald.gap", b"{}"),
        ("message", b"x"),
        ("message", b"y"),
        ("message", b"z"),
        ("message", b"a\nb"),
        ("message", long_data),
    ]
    assert reader.outcomes() == (None, None)
    assert reader.stream.chunked
    assert not reader.transport.closed  # a clean end leaves the hang-up to the caller


async def test_unchunked_body_runs_to_the_end_of_the_connection(cut: Cut) -> None:
    reader = Reader()
    writes = [UNCHUNKED, b"data: a\n\n", b"data: b\r\n\r\n", b"event: herald.gap\n"]

    reader.feed(cut([*writes, b"data: {}\n\n"]), lost=True)

    assert reader.events == [
        ("message", b"a"),
        ("message", b"b"),
        ("herald.gap", b"{}"),
    ]
    assert reader.outcomes() == (None, None)
    assert not reader.stream.chunked


MID_STREAM = (EOFError, "connection closed mid-stream")
FIRST = [("message", b'{"n":1}')]


@pytest.mark.parametrize(
    ("writes", "lost", "expected", "events"),
    [
        pytest.param(
            [b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n"],
            False,
            ((HttpError, "503"), "cancelled"),
            [],
            id="refused",
        ),
        pytest.param([], True, (MID_STREAM, "cancelled"), [], id="no-answer"),
        pytest.param(
            [b"HTTP/1.1 200 OK\r\n", b"x-pad: 0123456789abcd\r\n" * 800],
            False,
            ((ValueError, "response head too long"), "cancelled"),
            [],
            id="head-too-long",
        ),
        pytest.param(
            [CHUNKED, chunk(event(1)), b"5\r\nab"],
            True,
            (None, MID_STREAM),
            FIRST,
            id="lost-mid-chunk",
        ),
        pytest.param(
            [CHUNKED, chunk(event(1))],
            True,
            (None, MID_STREAM),
            FIRST,
            id="lost-between-chunks",
        ),
        pytest.param(
            [CHUNKED, b"zz\r\nab\r\n"],
            False,
            (None, (ValueError, "invalid literal for int() with base 16: b'zz'")),
            [],
            id="bad-chunk-size",
        ),
        pytest.param(
            [CHUNKED, b"1" * 1025],
            False,
            (None, (ValueError, "chunk-size line too long")),
            [],
            id="size-line-too-long",
        ),
    ],
)
async def test_broken_answers_end_the_stream_with_their_error(
    cut: Cut,
    writes: list[bytes],
    lost: bool,
    expected: tuple[object, object],
    events: list[tuple[str, bytes]],
) -> None:
    reader = Reader()

    reader.feed(cut(writes), lost=lost)

    assert reader.outcomes() == expected
    assert reader.events == events
    assert reader.transport.closed


async def test_close_cancels_whoever_waits_and_hangs_up() -> None:
    reader = Reader()
    reader.feed([CHUNKED, chunk(event(1))])

    reader.stream.close()

    assert reader.outcomes() == (None, "cancelled")
    assert reader.transport.closed
