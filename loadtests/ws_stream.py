"""A WebSocket client connection (RFC 6455), parsed as its bytes arrive.

Only what a subscriber needs: the upgrade handshake, the server's unmasked
frames (text and binary messages, fragmented or not, of any length up to
`max_size`), pongs to pings, and the closing handshake. No extension is
asked for, so any RSV bit set is a protocol error. Frames this client sends
are control frames, masked as the RFC requires of a client.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable

from stream import HttpError, Stream

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10
_FIN_TEXT = 0x80 | _TEXT  # the first byte of nearly every frame a subscriber gets

# Closes after which a subscriber resumes: normal, going away (drain), try
# again later (too slow, or instance full).
RESUMABLE = frozenset({1000, 1001, 1013})
NO_STATUS = 1005  # a close frame without a code

# Called with a message's payload and the time its last bytes came.
Handler = Callable[[bytes, float], None]


class WsError(ValueError):
    """The connection broke the protocol: close it with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code


class WsClosed(Exception):
    """The server closed with a code after which a client should not resume."""

    def __init__(self, code: int) -> None:
        super().__init__(f"closed {code}")
        self.code = code


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer `key` with."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def masked(opcode: int, payload: bytes = b"") -> bytes:
    """A final client frame of up to 125 bytes, with a fresh mask."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


class WsStream(Stream):
    """Upgrade `GET path` to a WebSocket and hand each message to `handle`.

    `ended` resolves when the server closes with a code of `RESUMABLE` and
    fails with `WsClosed` on any other; `close_code` keeps the server's code
    either way (`NO_STATUS` for a close frame without one).
    """

    def __init__(
        self, netloc: str, path: str, handle: Handler, max_size: int = 1 << 20
    ) -> None:
        self.key = base64.b64encode(os.urandom(16))
        super().__init__(
            f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.handle = handle
        self.max_size = max_size
        self.close_code: int | None = None
        self._upgraded = False
        self._closing = False  # this side sent its close frame
        self._buf = b""  # an incomplete frame
        self._parts: list[bytes] | None = None  # fragments of a message
        self._size = 0

    def accept(self, status: int, headers: dict[bytes, bytes]) -> None:
        if status != 101:
            raise HttpError(status)
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            raise ValueError("upgrade answered without 'Upgrade: websocket'")
        if headers.get(b"sec-websocket-accept") != accept_key(self.key):
            raise ValueError("wrong Sec-WebSocket-Accept")
        if headers.get(b"sec-websocket-extensions"):
            raise ValueError("an extension no one asked for")
        self._upgraded = True

    def received(self, data: bytes) -> None:
        try:
            self._frames(data)
        except WsError as exc:
            self._send_close(exc.code)
            raise

    def close(self) -> None:
        if self._upgraded:
            self._send_close(1000)
        super().close()

    def _frames(self, data: bytes) -> None:
        now = time.time()
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            size, at = second & 0x7F, pos + 2
            if size == 126:
                if end - at < 2:
                    break
                size, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
            elif size == 127:
                if end - at < 8:
                    break
                size, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
            if second & 0x80 or first & 0x70:
                raise WsError(1002, "masked frame or RSV bit from the server")
            if size > self.max_size:
                raise WsError(1009, "frame too big")
            if end - at < size:
                break

            pos = at + size
            if first == _FIN_TEXT and self._parts is None:
                self.handle(buf[at:pos], now)
            else:
                self._frame(first & 0x80, first & 0x0F, buf[at:pos], now)
                if self.ended.done():
                    return
        self._buf = buf[pos:]

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode >= _CLOSE:
            self._control(fin, opcode, payload)
        elif opcode in (_TEXT, _BINARY):
            if self._parts is not None:
                raise WsError(1002, "a new message inside a fragmented one")
            if fin:
                self.handle(payload, now)
            else:
                self._parts, self._size = [payload], len(payload)
        elif opcode == _CONTINUATION:
            if self._parts is None:
                raise WsError(1002, "continuation of no message")
            self._parts.append(payload)
            self._size += len(payload)
            if self._size > self.max_size:
                raise WsError(1009, "message too big")
            if fin:
                message, self._parts = b"".join(self._parts), None
                self.handle(message, now)
        else:
            raise WsError(1002, f"reserved opcode {opcode}")

    def _control(self, fin: int, opcode: int, payload: bytes) -> None:
        if not fin or len(payload) > 125:
            raise WsError(1002, "fragmented or long control frame")
        if opcode == _PING:
            self._write(masked(_PONG, payload))
        elif opcode == _CLOSE:
            if len(payload) == 1:
                raise WsError(1002, "one-byte close payload")
            code = int.from_bytes(payload[:2], "big") if payload else NO_STATUS
            self.close_code = code
            self._send_close(code)
            self.finish(None if code in RESUMABLE else WsClosed(code))
        elif opcode != _PONG:
            raise WsError(1002, f"reserved opcode {opcode}")

    def _send_close(self, code: int) -> None:
        """Send this side's one close frame; `NO_STATUS` is sent as no code."""
        if self._closing:
            return
        self._closing = True
        self._write(masked(_CLOSE, b"" if code == NO_STATUS else code.to_bytes(2)))

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)
