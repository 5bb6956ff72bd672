"""An SSE stream over HTTP/1.1, parsed as its bytes arrive.

Granian sends an SSE body with chunked transfer encoding, one chunk a write;
a chunk may still be split across reads, or several come in one read, so
the de-chunking keeps its place between reads. Without chunking, the body
runs to the end of the connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stream import Stream
from wire import SseReader

# Bytes a chunk-size line may take before the stream is deemed broken.
_MAX_SIZE_LINE = 1024

# Called with an event's type, its data and the time its bytes came.
Handler = Callable[[str, bytes, float], None]


class SseStream(Stream):
    """`GET` an event stream and hand each event to `handle`."""

    def __init__(self, request: bytes, handle: Handler) -> None:
        super().__init__(request)
        self.handle = handle
        self.chunked = False
        self._events = SseReader()
        self._left = 0  # bytes to go in the current chunk, its CRLF included
        self._partial = b""  # an incomplete chunk-size line
        self._last = False  # the zero-size chunk came

    def accept(self, status: int, headers: dict[bytes, bytes]) -> None:
        super().accept(status, headers)
        coding = headers.get(b"transfer-encoding", b"").lower()
        self.chunked = coding == b"chunked"
        self.ends_at_eof = not self.chunked

    def received(self, data: bytes) -> None:
        now = time.time()
        body = self._dechunk(data) if self.chunked else data
        if body:
            handle = self.handle
            for kind, _, payload in self._events.feed(body):
                handle(kind, payload, now)
        if self._last:
            self.finish()

    def _dechunk(self, data: bytes) -> bytes:
        """The body bytes in `data`, chunk-size lines and chunk ends cut out."""
        if not self._left and not self._partial:
            # Most reads hold exactly one whole chunk: one write of Granian's.
            eol = data.find(b"\r\n")
            if eol > 0:
                size = int(data[:eol].partition(b";")[0], 16)
                if size and len(data) == eol + size + 4:
                    return data[eol + 2 : -2]

        buf = self._partial + data if self._partial else data
        self._partial = b""
        pieces = []
        pos, end = 0, len(buf)
        while pos < end and not self._last:
            left = self._left
            if left:
                # The chunk's data ends two bytes (its CRLF) before the chunk.
                take = min(left, end - pos)
                stop = pos + min(take, left - 2)
                if stop > pos:
                    pieces.append(buf[pos:stop])
                self._left = left - take
                pos += take
                continue

            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                self._partial = buf[pos:]
                if len(self._partial) > _MAX_SIZE_LINE:
                    raise ValueError("chunk-size line too long")
                break
            size = int(buf[pos:eol].partition(b";")[0], 16)
            pos = eol + 2
            if size:
                self._left = size + 2
            else:
                self._last = True  # trailers, if any, are not read
        return b"".join(pieces)
