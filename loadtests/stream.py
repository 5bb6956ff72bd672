"""One HTTP/1.1 request whose answer is read as a stream, as bytes arrive.

The bench's SSE and WebSocket subscribers are `asyncio.Protocol`s built on
`Stream`: their bytes are parsed in `data_received`, so a delivery costs no
coroutine switch, and the client stays cheap next to the server it measures.
"""

from __future__ import annotations

import abc
import asyncio
from typing import cast

# The longest head a server may send before its body: a guard, not a limit.
_MAX_HEAD = 16384


class HttpError(Exception):
    """The server answered with an unexpected status."""


def parse_head(raw: bytes) -> tuple[int, dict[bytes, bytes]]:
    """The status and the lower-cased headers of a response head."""
    lines = raw.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class Stream(asyncio.Protocol, abc.ABC):
    """Send `request` on connect, accept the answer's head, stream its body.

    `opened` resolves once the head is in and `accept` took it; `ended` once
    the stream is over, with an exception unless it ended cleanly. Body bytes
    go to `received` in the order they came; `ValueError`s it raises end the
    stream with that error. A connection lost mid-stream is an `EOFError`
    unless `ends_at_eof` says the body runs to the end of the connection.
    """

    ends_at_eof = False

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.opened: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            if self.ended.done():
                return  # bytes after the end, such as after a close frame
            if self.opened.done():
                self.received(data)
            else:
                self._read_head(data)
        except ValueError as exc:
            self.finish(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and not self.ends_at_eof:
            exc = EOFError("connection closed mid-stream")
        self.finish(exc)

    def accept(self, status: int, headers: dict[bytes, bytes]) -> None:
        """Check the head of the answer; raise to refuse it."""
        if status != 200:
            raise HttpError(status)

    @abc.abstractmethod
    def received(self, data: bytes) -> None:
        """Take the next body bytes."""

    def finish(self, error: BaseException | None = None) -> None:
        """End the stream, with `error` unless it ended cleanly."""
        if not self.opened.done():
            self.opened.set_exception(error or EOFError("no answer"))
            # Nobody waits for the end of a stream that never opened.
            self.ended.cancel()
        elif not self.ended.done():
            if error is None:
                self.ended.set_result(None)
            else:
                self.ended.set_exception(error)
        if error is not None and self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Hang up; whoever still waits on the stream is cancelled."""
        for future in (self.opened, self.ended):
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # seen, so that asyncio does not log it
        if self.transport is not None:
            self.transport.close()

    def _read_head(self, data: bytes) -> None:
        raw = self._head + data
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            if len(raw) > _MAX_HEAD:
                raise ValueError("response head too long")
            self._head = raw
            return

        self._head = b""
        try:
            self.accept(*parse_head(raw[:end]))
        except HttpError as exc:
            self.finish(exc)
            return

        self.opened.set_result(None)
        rest = raw[end + 4 :]
        if rest:
            self.received(rest)
