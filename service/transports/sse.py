"""Server-Sent Events: `GET /v1/sse`, one stream of `id:`/`event:`/`data:` blocks."""

from __future__ import annotations

import random
from collections.abc import Awaitable

from ..connection import Connection
from ..errors import EndReason, InvalidInput
from ..event import Event, encode
from ..runtime import Runtime
from ..subscription import Item, Subscription
from .asgi import (
    Query,
    Receive,
    Scope,
    Send,
    header,
    send_invalid,
    send_problem,
    subscribed,
    watch_disconnect,
)

NAME = "sse"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_PING = b": ping\n\n"
_PAGE = 256
# The type name of the awaitable Granian returns for a chunk it took at once.
_DONE = "PyEmptyAwaitable"


def encode_item(item: Item) -> bytes:
    """An event's shared SSE bytes, or a `herald.gap` block with its own id."""
    if isinstance(item, Event):
        return item.sse
    body = encode({"type": "herald.gap", "cursor": item.asked, "resumed": item.resumed})
    return (
        b"id: "
        + item.resumed.encode()
        + b"\nevent: herald.gap\ndata: "
        + body
        + b"\n\n"
    )


async def serve(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one SSE stream until the client leaves, falls behind, or we drain."""
    if scope.get("method") not in ("GET", "HEAD"):
        await send_problem(send, 405, "use GET", headers=[(b"allow", b"GET")])
        return
    if rt.draining:
        await send_problem(
            send, 503, "server draining, reconnect", headers=[(b"retry-after", b"1")]
        )
        return
    try:
        query = Query(scope)
        patterns = query.patterns(rt.settings.max_topics)
        cursor = query.cursor(header(scope, b"last-event-id") or None)
    except InvalidInput as exc:
        await send_invalid(send, exc)
        return

    async with subscribed(rt.hub, NAME, patterns, cursor, send) as opened:
        if opened is not None:
            await _stream(rt, opened[1], opened[0], receive, send)


class _Writer:
    """Writes a stream's chunks, and is its subscription's sink once live.

    Granian takes a body chunk at once while its channel to the socket has
    room, and returns an awaitable that is already done; only then may the
    hub write live events here directly, skipping a wake of the stream's
    task per event. A chunk that has to wait is left `pending` for the task
    to await; until it is done, events queue in the subscription as usual,
    so a client that stops reading still ends as too slow.
    """

    __slots__ = ("conn", "direct", "pending", "send")

    def __init__(self, send: Send, conn: Connection) -> None:
        self.send = send
        self.conn = conn
        self.direct = False
        self.pending: Awaitable[None] | None = None

    def write(self, chunk: bytes, more: bool = True) -> None:
        result = self.send(
            {"type": "http.response.body", "body": chunk, "more_body": more}
        )
        if type(result).__name__ != _DONE:
            self.pending = result
        self.conn.wrote()

    async def settle(self) -> None:
        """Wait until the last chunk is taken."""
        if self.pending is not None:
            # Cleared only once done: until then the hub must not write.
            await self.pending
            self.pending = None

    def __call__(self, event: Event) -> bool:
        if not self.direct or self.pending is not None or self.conn.gone:
            return False
        try:
            self.write(event.sse)
        except Exception:  # the stream is over: the task finds out and ends
            return False
        if self.pending is not None:
            self.conn.wake.set()
        return True


async def _stream(
    rt: Runtime, sub: Subscription, conn: Connection, receive: Receive, send: Send
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    writer = _Writer(send, conn)
    writer.write(f"retry: {rt.settings.retry_ms}\n\n".encode())
    # Direct writes only where a write is known to complete without waiting.
    writer.direct = writer.pending is None
    await writer.settle()
    sub.sink = writer
    watcher = watch_disconnect(receive, conn)
    hub = rt.hub
    try:
        while True:
            if (
                not sub.ready
                and sub.ended is None
                and not conn.gone
                and not conn.ping_due
                and writer.pending is None
            ):
                conn.wake.clear()
                await conn.wake.wait()
            await writer.settle()
            if conn.gone:
                return
            if sub.ended is not None:
                break
            if sub.ready:
                # Live items are taken without a coroutine: this is the
                # per-event path of every subscriber.
                if sub.replaying:
                    items = await hub.next(sub, _PAGE)
                else:
                    items = sub.take(_PAGE)
                if items:
                    if len(items) == 1:
                        writer.write(encode_item(items[0]))
                    else:
                        writer.write(b"".join([encode_item(i) for i in items]))
            elif conn.ping_due:
                writer.write(_PING)
        writer.write(_farewell(rt, sub.ended), more=False)
        await writer.settle()
    except OSError:
        return
    finally:
        sub.sink = None
        watcher.cancel()


def _farewell(rt: Runtime, reason: EndReason) -> bytes:
    """The last bytes of a stream: a jittered retry when draining, so clients
    spread their reconnects, and a comment saying why."""
    if reason is EndReason.DRAIN:
        retry = int(rt.settings.retry_ms * random.uniform(0.5, 1.5))
        return f": {reason.value}\nretry: {retry}\n\n".encode()
    return f": {reason.value}\n\n".encode()
