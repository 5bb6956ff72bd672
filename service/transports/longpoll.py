"""Long polling: `GET /v1/poll` answers with the events after a cursor.

It answers at once when there are events, else when the next one comes or
the timeout runs out. The answer's cursor goes into the next poll, so an
event published between two polls is in the second answer.
"""

from __future__ import annotations

import asyncio

from ..connection import Connection
from ..errors import InvalidInput
from ..event import Event
from ..hub import Hub
from ..runtime import Runtime
from ..subscription import Gap, Subscription
from .asgi import (
    Query,
    Receive,
    Scope,
    Send,
    send_invalid,
    send_problem,
    subscribed,
    watch_disconnect,
)

NAME = "poll"
MAX_TIMEOUT = 55
MAX_LIMIT = 1000


async def serve(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one poll."""
    if scope.get("method") not in ("GET", "HEAD"):
        await send_problem(send, 405, "use GET", headers=[(b"allow", b"GET")])
        return
    try:
        query = Query(scope)
        patterns = query.patterns(rt.settings.max_topics)
        cursor = query.cursor()
        timeout = query.number("timeout", 25, 0, MAX_TIMEOUT)
        limit = query.number("limit", 100, 1, MAX_LIMIT)
    except InvalidInput as exc:
        await send_invalid(send, exc)
        return
    if rt.draining:
        timeout = 0

    hub = rt.hub
    hit = hub.recent(patterns, cursor, limit) if cursor is not None else None
    if hit is not None:
        await _answer(send, [e.json for e in hit[0]], str(hit[1]), gap=False)
        return

    async with subscribed(hub, NAME, patterns, cursor, send) as opened:
        if opened is None:
            return
        conn, sub = opened
        watcher = watch_disconnect(receive, conn)
        try:
            events, gap = await _wait(hub, sub, conn, float(timeout), limit)
        finally:
            watcher.cancel()
        if conn.gone:
            return
        after = sub.cursor

    await _answer(send, events, after, gap)


async def _wait(
    hub: Hub, sub: Subscription, conn: Connection, seconds: float, limit: int
) -> tuple[list[bytes], bool]:
    """Events for the answer, and whether a gap came first: at once if any are
    ready, else the first ones to arrive within `seconds`."""
    events: list[bytes] = []
    gap = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not events and not gap and sub.ended is None and not conn.gone:
        if not sub.ready:
            if loop.time() >= deadline:
                break
            conn.wake.clear()
            # A timer that wakes the loop is cheaper than a timeout scope.
            timer = loop.call_at(deadline, conn.wake.set)
            try:
                await conn.wake.wait()
            finally:
                timer.cancel()
            continue
        for item in await hub.next(sub, limit - len(events)):
            if isinstance(item, Gap):
                gap = True
            elif isinstance(item, Event):
                events.append(item.json)
    return events, gap


async def _answer(send: Send, events: list[bytes], cursor: str, gap: bool) -> None:
    """The poll's 200: events as stored JSON, joined without decoding them."""
    body = (
        b'{"events":['
        + b",".join(events)
        + b'],"cursor":"'
        + cursor.encode()
        + (b'","gap":true}' if gap else b'","gap":false}')
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
