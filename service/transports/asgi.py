"""ASGI plumbing the transports share: query parsing, problems, disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl

from ..connection import Connection
from ..cursor import Cursor
from ..errors import BrokerUnavailable, InvalidInput
from ..event import encode
from ..hub import Hub, InstanceFull
from ..subscription import Subscription
from ..topics import check_pattern

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Query:
    """The query string of a subscribe request, with checked accessors."""

    def __init__(self, scope: Scope) -> None:
        raw = scope.get("query_string", b"")
        try:
            text = raw.decode()
            if "%" in text or "+" in text:
                pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
            else:
                # Nothing to unescape, as in most subscribe URLs: split alone.
                parts = (p.partition("=") for p in text.split("&") if p)
                pairs = [(k, v) for k, _, v in parts]
        except UnicodeDecodeError:
            raise InvalidInput("query", "is not valid UTF-8") from None
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def one(self, name: str) -> str | None:
        values = self.all(name)
        if len(values) > 1:
            raise InvalidInput(name, "given more than once")
        return values[0] if values else None

    def patterns(self, max_topics: int, *, required: bool = True) -> list[str]:
        patterns = self.all("topic")
        if required and not patterns:
            raise InvalidInput("topic", "at least one topic pattern is required")
        if len(patterns) > max_topics:
            raise InvalidInput("topic", f"more than {max_topics} patterns")
        return [check_pattern(p) for p in dict.fromkeys(patterns)]

    def cursor(self, header: str | None = None) -> Cursor | None:
        if header is not None:
            return Cursor.parse(header, "Last-Event-ID")
        value = self.one("cursor")
        return None if value is None or value == "" else Cursor.parse(value)

    def number(self, name: str, default: int, low: int, high: int) -> int:
        value = self.one(name)
        if value is None:
            return default
        # isdigit() alone takes "²" (which int() refuses) and other scripts' digits.
        whole = value.isascii() and value.isdigit() and len(value) <= 20
        if not whole or not low <= int(value) <= high:
            raise InvalidInput(name, f"must be a whole number from {low} to {high}")
        return int(value)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    title: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    field: str | None = None,
) -> None:
    """Answer with an RFC 9457 problem+json body, naming the field at fault."""
    problem: dict[str, object] = {
        "type": "about:blank",
        "status": status,
        "title": title or _title(status),
        "detail": detail,
    }
    if field is not None:
        problem["field"] = field
    body = encode(problem)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_invalid(send: Send, exc: InvalidInput) -> None:
    """Answer a refused request with its status, detail and field."""
    await send_problem(send, exc.status, f"{exc.field}: {exc.detail}", field=exc.field)


def _title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Watch(Protocol):
    def cancel(self) -> Any: ...


def watch_disconnect(receive: Receive, conn: Connection) -> Watch:
    """Wake `conn` and mark it gone when the client hangs up.

    Granian's `receive` returns a future that takes callbacks, which costs
    far less per connection than a task parked on it; on another server a
    task waits instead.
    """
    first = receive()
    if hasattr(first, "add_done_callback"):
        return _CallbackWatch(receive, conn, first)

    async def watch(message: Awaitable[Message]) -> None:
        while (await message)["type"] != "http.disconnect":
            message = receive()
        conn.hang_up()

    return asyncio.get_running_loop().create_task(watch(first))


class _CallbackWatch:
    __slots__ = ("conn", "pending", "receive")

    def __init__(self, receive: Receive, conn: Connection, first: Any) -> None:
        self.receive = receive
        self.conn = conn
        self.pending = first
        first.add_done_callback(self._done)

    def _done(self, future: Any) -> None:
        if future is not self.pending or future.cancelled():
            return
        if future.exception() is not None or future.result()["type"] == (
            "http.disconnect"
        ):
            self.conn.hang_up()
            return
        self.pending = self.receive()
        self.pending.add_done_callback(self._done)

    def cancel(self) -> None:
        pending, self.pending = self.pending, None
        pending.cancel()


@contextlib.asynccontextmanager
async def subscribed(
    hub: Hub, transport: str, patterns: Sequence[str], cursor: Cursor | None, send: Send
) -> AsyncIterator[tuple[Connection, Subscription] | None]:
    """A counted connection with one subscription, freed on exit; None (after
    answering 503) when the instance is full or the broker is unreachable."""
    try:
        conn = hub.connect(transport)
    except InstanceFull:
        await send_problem(send, 503, "instance full", headers=[(b"retry-after", b"5")])
        yield None
        return
    try:
        try:
            sub = await hub.open(patterns, cursor, conn)
        except BrokerUnavailable as exc:
            await send_problem(
                send,
                503,
                f"broker unavailable, retry later: {exc}",
                headers=[(b"retry-after", b"2")],
            )
            yield None
            return
        try:
            yield conn, sub
        finally:
            hub.close(sub)
    finally:
        hub.disconnect(conn)
