"""Fakes for the bench's stream clients, and the server's bytes made by hand.

`FakeTransport` keeps what a client writes, so that a test can feed a
`Stream` any reads it likes and compare what comes out, with no socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

# The reads a client gets for what a server wrote.
Cut = Callable[[Sequence[bytes]], list[bytes]]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
LAST_CHUNK = b"0\r\n\r\n"


class FakeTransport(asyncio.Transport):
    """A transport that keeps each write; closing it only marks it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def cut_by(step: int | None) -> Cut:
    """Reads of `step` bytes; one read a write for None, one in all for 0."""

    def cut(writes: Sequence[bytes]) -> list[bytes]:
        if step is None:
            return list(writes)
        blob = b"".join(writes)
        size = step or len(blob) or 1
        return [blob[i : i + size] for i in range(0, len(blob), size)]

    return cut


def outcome(future: asyncio.Future[None]) -> object:
    """How a finished future ended, in a form a test compares whole:
    None, "cancelled", or the exception's type and message."""
    assert future.done()
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    return None if error is None else (type(error), str(error))


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    """One chunk of a chunked HTTP/1.1 body."""
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A server's WebSocket frame: unmasked, its length in the shortest form."""
    first = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        return first + bytes([size]) + payload
    if size < 1 << 16:
        return first + bytes([126]) + size.to_bytes(2, "big") + payload
    return first + bytes([127]) + size.to_bytes(8, "big") + payload


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each frame a client sent, unmasked.

    A client's frames here are final and masked, with payloads under 126
    bytes; anything else fails the test.
    """
    frames = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first & 0xF0 == 0x80, f"not a final frame without RSV: {first:#x}"
        assert second & 0x80, "client frame without a mask"
        size = second & 0x7F
        assert size < 126, "client control frame too long"
        mask = data[pos + 2 : pos + 6]
        body = data[pos + 6 : pos + 6 + size]
        frames.append(
            (first & 0x0F, bytes(b ^ mask[i & 3] for i, b in enumerate(body)))
        )
        pos += 6 + size
    assert pos == len(data), "a truncated client frame"
    return frames
