"""`WsStream` speaks the client side of RFC 6455: it checks the upgrade,
reads the server's frames however they are cut, answers pings, echoes the
close, and fails with 1002 or 1009 on what breaks the protocol."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest
from stream import HttpError
from ws_stream import WsClosed, WsError, WsStream, accept_key, masked

from tests.loadtests.fakes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Cut,
    FakeTransport,
    client_frames,
    frame,
    outcome,
)

# RFC 6455, section 1.3: the sample nonce and the answer it calls for.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade(accept: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, code.to_bytes(2, "big") + reason)


class Client:
    """A `WsStream` on a fake transport, and the messages it handed on."""

    def __init__(self, max_size: int = 1 << 20) -> None:
        self.messages: list[bytes] = []
        self.stream = WsStream("127.0.0.1:1", "/v1/ws?topic=t", self.handle, max_size)
        self.stream.key = RFC_KEY  # so that the RFC's answer is the right one
        self.transport = FakeTransport()
        self.stream.connection_made(self.transport)

    def handle(self, data: bytes, now: float) -> None:
        assert now > 0
        self.messages.append(data)

    def feed(self, reads: Sequence[bytes], lost: bool = False) -> None:
        for data in reads:
            self.stream.data_received(data)
        if lost:
            self.stream.connection_lost(None)

    def sent(self) -> list[tuple[int, bytes]]:
        """The frames the client wrote after its request."""
        return client_frames(b"".join(self.transport.written[1:]))

    def outcomes(self) -> tuple[object, object]:
        return outcome(self.stream.opened), outcome(self.stream.ended)


def test_accept_key_is_the_rfc_6455_sample() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_masked_frames_carry_their_payload_under_a_mask() -> None:
    frames = [masked(CLOSE, (1000).to_bytes(2, "big")), masked(PONG), masked(PING)]

    assert client_frames(b"".join(frames)) == [
        (CLOSE, b"\x03\xe8"),
        (PONG, b""),
        (PING, b""),
    ]


async def test_upgrade_request_asks_for_websocket_with_a_fresh_key() -> None:
    stream = WsStream("127.0.0.1:8000", "/v1/ws?topic=a", lambda data, now: None)
    transport = FakeTransport()
    stream.connection_made(transport)

    assert transport.written == [
        b"GET /v1/ws?topic=a HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + stream.key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    ]
    assert len(base64.b64decode(stream.key, validate=True)) == 16
    other = WsStream("127.0.0.1:8000", "/", lambda data, now: None)
    assert other.key != stream.key
    stream.close()
    other.close()


async def test_messages_come_out_whole_however_cut(cut: Cut) -> None:
    client = Client()
    writes = [
        upgrade(RFC_ACCEPT),
        frame(TEXT, b'{"op":"event"}'),  # 7-bit length
        frame(TEXT, b"m" * 126),  # 16-bit length, its smallest
        frame(BINARY, b"b" * 65536),  # 64-bit length, its smallest
        frame(TEXT, b"ab", fin=False),
        frame(PING, b"hi"),  # a control frame between fragments
        frame(CONTINUATION, b"cd", fin=False),
        frame(CONTINUATION, b"ef"),
        frame(TEXT),
        frame(PONG, b"unasked"),
        close_frame(1001, b"draining"),
        frame(TEXT, b"after the close"),
    ]

    client.feed(cut(writes))

    assert client.messages == [
        b'{"op":"event"}',
        b"m" * 126,
        b"b" * 65536,
        b"abcdef",
        b"",
    ]
    assert client.sent() == [(PONG, b"hi"), (CLOSE, b"\x03\xe9")]
    assert client.stream.close_code == 1001
    assert client.outcomes() == (None, None)


@pytest.mark.parametrize(
    ("close", "code", "ended", "echo"),
    [
        (close_frame(1000), 1000, None, b"\x03\xe8"),
        (close_frame(1001, b"bye"), 1001, None, b"\x03\xe9"),
        (close_frame(1013), 1013, None, b"\x03\xf5"),
        (close_frame(1008), 1008, (WsClosed, "closed 1008"), b"\x03\xf0"),
        (close_frame(1011), 1011, (WsClosed, "closed 1011"), b"\x03\xf3"),
        (close_frame(4000), 4000, (WsClosed, "closed 4000"), b"\x0f\xa0"),
        (frame(CLOSE), 1005, (WsClosed, "closed 1005"), b""),
    ],
    ids=["1000", "1001", "1013", "1008", "1011", "4000", "no-code"],
)
async def test_close_is_echoed_and_resumable_codes_end_cleanly(
    close: bytes, code: int, ended: object, echo: bytes
) -> None:
    client = Client()

    client.feed([upgrade(RFC_ACCEPT) + close])
    client.stream.close()  # the caller hangs up; no second close frame

    assert client.stream.close_code == code
    assert client.outcomes() == (None, ended)
    assert client.sent() == [(CLOSE, echo)]
    assert client.transport.closed


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        pytest.param(
            b"\x81\x82" + b"mask" + b"xy",  # a text frame with the mask bit
            "1002 masked frame or RSV bit from the server",
            id="masked",
        ),
        pytest.param(
            b"\xc1\x01x", "1002 masked frame or RSV bit from the server", id="rsv1"
        ),
        pytest.param(frame(3, b"x"), "1002 reserved opcode 3", id="opcode-3"),
        pytest.param(frame(11), "1002 reserved opcode 11", id="opcode-11"),
        pytest.param(
            frame(CONTINUATION, b"x"),
            "1002 continuation of no message",
            id="lone-continuation",
        ),
        pytest.param(
            frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"),
            "1002 a new message inside a fragmented one",
            id="message-in-message",
        ),
        pytest.param(
            frame(PING, b"p", fin=False),
            "1002 fragmented or long control frame",
            id="fragmented-ping",
        ),
        pytest.param(
            frame(PING, b"p" * 126),
            "1002 fragmented or long control frame",
            id="long-ping",
        ),
        pytest.param(
            frame(CLOSE, b"\x03"), "1002 one-byte close payload", id="one-byte-close"
        ),
        pytest.param(frame(TEXT, b"x" * 201), "1009 frame too big", id="big-frame"),
        pytest.param(
            frame(TEXT, b"x" * 150, fin=False) + frame(CONTINUATION, b"x" * 51),
            "1009 message too big",
            id="big-message",
        ),
    ],
)
async def test_protocol_errors_close_with_their_code(
    cut: Cut, frames: bytes, error: str
) -> None:
    client = Client(max_size=200)

    client.feed(cut([upgrade(RFC_ACCEPT), frames, frame(TEXT, b"never read")]))

    code = int(error.split()[0])
    assert client.outcomes() == (None, (WsError, error))
    error_raised = client.stream.ended.exception()
    assert isinstance(error_raised, WsError) and error_raised.code == code
    assert client.sent() == [(CLOSE, code.to_bytes(2, "big"))]
    assert client.messages == []
    assert client.transport.closed


@pytest.mark.parametrize(
    ("head", "opened"),
    [
        pytest.param(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n",
            (HttpError, "403"),
            id="403",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            (HttpError, "200"),
            id="200",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: "
            + RFC_ACCEPT
            + b"\r\n\r\n",
            (ValueError, "upgrade answered without 'Upgrade: websocket'"),
            id="no-upgrade",
        ),
        pytest.param(
            upgrade(accept_key(b"another nonce")),
            (ValueError, "wrong Sec-WebSocket-Accept"),
            id="wrong-accept",
        ),
        pytest.param(
            upgrade(RFC_ACCEPT, b"Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            (ValueError, "an extension no one asked for"),
            id="extension",
        ),
    ],
)
async def test_refused_upgrades_fail_to_open(
    cut: Cut, head: bytes, opened: object
) -> None:
    client = Client()

    client.feed(cut([head, frame(TEXT, b"never read")]))

    assert client.outcomes() == (opened, "cancelled")
    assert client.transport.written[1:] == []  # no close frame before an upgrade
    assert client.messages == []
    assert client.transport.closed


async def test_close_before_the_server_does_sends_1000_once() -> None:
    client = Client()
    client.feed([upgrade(RFC_ACCEPT)])

    client.stream.close()
    client.stream.close()

    assert client.outcomes() == (None, "cancelled")
    assert client.sent() == [(CLOSE, b"\x03\xe8")]
    assert client.stream.close_code is None
    assert client.transport.closed


async def test_close_before_the_upgrade_sends_no_frame() -> None:
    client = Client()

    client.stream.close()

    assert client.outcomes() == ("cancelled", "cancelled")
    assert client.transport.written[1:] == []


async def test_connection_lost_without_a_close_frame_is_an_eof() -> None:
    client = Client()

    client.feed([upgrade(RFC_ACCEPT), frame(TEXT, b"last")], lost=True)

    assert client.messages == [b"last"]
    assert client.outcomes() == (None, (EOFError, "connection closed mid-stream"))
    assert client.stream.close_code is None
    assert client.sent() == []
