"""A strict Server-Sent Events reader for tests, following the WHATWG rules.

It keeps what a lenient client would hide: comment lines, `retry:` fields,
and whether the stream ended in the middle of an event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Message:
    """One dispatched SSE event: the fields as the spec assembles them."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class IncompleteEvent(Exception):
    """The stream ended with field lines but no blank line after them."""


def split_lines(buffer: str) -> tuple[list[str], str]:
    """Complete lines (ended by CRLF, LF or CR) and the unfinished rest."""
    lines: list[str] = []
    start = 0
    i = 0
    while i < len(buffer):
        ch = buffer[i]
        if ch == "\r":
            if i + 1 == len(buffer):
                break  # a CR at the end may be the first half of CRLF
            lines.append(buffer[start:i])
            i += 2 if buffer[i + 1] == "\n" else 1
            start = i
            continue
        if ch == "\n":
            lines.append(buffer[start:i])
            start = i + 1
        i += 1
    return lines, buffer[start:]


class Parser:
    """Feed text chunks; take dispatched messages and stray comments."""

    def __init__(self) -> None:
        self.rest = ""
        self.pending: list[str] = []
        self.comments: list[str] = []
        self.retry: int | None = None
        self.last_id: str | None = None
        self._current = Message()
        self._has_fields = False

    def feed(self, text: str) -> list[Message]:
        lines, self.rest = split_lines(self.rest + text)
        out = []
        for line in lines:
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def close(self) -> None:
        """Raise IncompleteEvent if the stream stopped inside an event."""
        if self.rest or self._has_fields:
            raise IncompleteEvent(repr(self.rest or self._current))

    def _line(self, line: str) -> Message | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            self._current.comments.append(line[1:].lstrip(" "))
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        self._has_fields = True
        if name == "data":
            self.pending.append(value)
        elif name == "event":
            self._current.event = value
        elif name == "id" and "\0" not in value:
            self._current.id = value
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
            self._current.retry = int(value)
        return None

    def _dispatch(self) -> Message | None:
        message, self._current = self._current, Message()
        self._has_fields = False
        data, self.pending = self.pending, []
        if not data:
            return None  # per spec, an event without data is not dispatched
        message.data = "\n".join(data)
        return message


async def stream(
    client: httpx.AsyncClient, url: str, **kwargs: object
) -> AsyncIterator[Message]:
    """Yield the messages of an SSE response; raise IncompleteEvent on a cut."""
    async with client.stream("GET", url, **kwargs) as response:  # type: ignore[arg-type]
        response.raise_for_status()
        parser = Parser()
        async for chunk in response.aiter_text():
            for message in parser.feed(chunk):
                yield message
        parser.close()
