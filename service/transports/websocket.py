"""WebSocket: `GET /v1/ws`, JSON text frames in both directions.

One connection may hold several subscriptions, one per `subscribe` op (and
one from the query string); each is delivered in cursor order. A reader
task handles the client's ops while the connection's loop writes events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..broker import Draft
from ..connection import Connection
from ..cursor import Cursor
from ..errors import (
    BrokerUnavailable,
    CloseCode,
    EndReason,
    InvalidInput,
    PublishUnconfirmed,
)
from ..event import Event, encode
from ..hub import InstanceFull
from ..protocol import (
    PingOp,
    PublishOp,
    Ref,
    SubscribeOp,
    UnsubscribeOp,
    decode_op,
    event_body,
    ref_of,
)
from ..runtime import Runtime
from ..subscription import Item, Subscription
from ..topics import check_pattern
from .asgi import Query, Receive, Scope, Send, send_problem

log = logging.getLogger("herald.ws")

NAME = "ws"
_PAGE = 256
_PING = '{"op":"ping"}'
# The type name of Granian's send futures: they run without being awaited.
_FUTURE = "PyFutureAwaitable"


class Closing(Exception):
    """End the connection with this close code and reason."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def encode_item(item: Item) -> str:
    if isinstance(item, Event):
        return item.ws
    return encode({"op": "gap", "cursor": item.asked, "resumed": item.resumed}).decode()


class Session:
    """The state of one WebSocket connection."""

    def __init__(self, rt: Runtime, conn: Connection, send: Send) -> None:
        self.rt = rt
        self.conn = conn
        self.send_raw = send
        self.subs: list[Subscription] = []
        self.closing: Closing | None = None
        # Direct writes (see `__call__`) need Granian's futures, which send
        # without being awaited and can say whether they are done.
        self.direct = False
        self._sending = 0
        self._last: Any = None

    async def send(self, text: str) -> None:
        """Send one frame after every frame written directly before it."""
        # Counted from the start: once the last direct write is done, the
        # hub must not write ahead of this frame while this task resumes.
        self._sending += 1
        try:
            await self.settle()
            await self.send_raw({"type": "websocket.send", "text": text})
        finally:
            self._sending -= 1
        self.conn.wrote()

    async def settle(self) -> None:
        """Wait until the last frame written directly has gone out."""
        last = self._last
        if last is None or last.done():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        last.add_done_callback(done)
        await waiter

    def __call__(self, event: Event) -> bool:
        """The sink of this connection's subscriptions: write a live event
        now unless another frame is on its way, so that the hub's fan-out
        does not wake this connection's task per event."""
        last = self._last
        if (
            not self.direct
            or self._sending
            or (last is not None and not last.done())
            or self.closing is not None
            or self.conn.gone
        ):
            return False
        try:
            self._last = self.send_raw({"type": "websocket.send", "text": event.ws})
        except Exception:  # the socket is over: the reader finds out
            return False
        self.conn.wrote()
        return True

    async def reply(self, ref: Ref, **fields: Any) -> None:
        if ref is not None:
            fields["ref"] = ref
        await self.send(encode(fields).decode())

    async def error(self, ref: Ref, status: int, detail: str) -> None:
        await self.reply(ref, op="error", status=status, detail=detail)

    async def subscribe(self, patterns: list[str], cursor: Cursor | None) -> None:
        limit = self.rt.settings.max_topics
        patterns = [check_pattern(p, "topics") for p in dict.fromkeys(patterns)]
        if not patterns:
            raise InvalidInput("topics", "at least one topic pattern is required")
        # The limit holds for the whole connection, not each op: else one
        # client could subscribe without bound, one op at a time.
        held = sum(len(s.patterns) for s in self.subs)
        if held + len(patterns) > limit:
            raise InvalidInput(
                "topics", f"more than {limit} patterns on this connection ({held} held)"
            )
        sub = await self.rt.hub.open(patterns, cursor, self.conn)
        sub.sink = self
        self.subs.append(sub)

    def unsubscribe(self, patterns: list[str]) -> None:
        for sub in self.subs:
            self.rt.hub.unsubscribe(sub, patterns)
        self.subs = [s for s in self.subs if s.ended is None]

    def close_all(self) -> None:
        for sub in self.subs:
            self.rt.hub.close(sub)

    async def handle(self, frame: str) -> None:
        """Act on one client frame; bad frames get an error frame, never a close."""
        ref: Ref = None
        try:
            op = decode_op(frame)
            ref = op.ref
            if isinstance(op, SubscribeOp):
                cursor = Cursor.parse(op.cursor) if op.cursor else None
                await self.subscribe(op.topics, cursor)
                await self.reply(ref, op="ack")
            elif isinstance(op, UnsubscribeOp):
                self.unsubscribe(op.topics)
                await self.reply(ref, op="ack")
            elif isinstance(op, PublishOp):
                await self.publish(op)
            elif isinstance(op, PingOp):
                await self.reply(ref, op="pong")
        except InvalidInput as exc:
            if ref is None:
                ref = ref_of(frame)
            await self.error(ref, exc.status, f"{exc.field}: {exc.detail}")
        except PublishUnconfirmed as exc:
            await self.error(ref, 504, str(exc))
        except BrokerUnavailable as exc:
            await self.error(ref, 503, str(exc))
        except InstanceFull:
            await self.error(ref, 503, "instance full")

    async def publish(self, op: PublishOp) -> None:
        body = event_body(op.topic, op.type, op.data, self.rt.settings.max_event_bytes)
        [published] = await self.rt.broker.publish([Draft(op.topic, body)])
        await self.reply(op.ref, op="ack", id=published.event.id)


async def serve(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket connection until either side closes it."""
    if scope["type"] != "websocket":
        await send_problem(
            send,
            426,
            "WebSocket upgrade required",
            headers=[(b"upgrade", b"websocket")],
        )
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return

    try:
        conn = rt.hub.connect(NAME)
    except InstanceFull:
        await send({"type": "websocket.accept"})
        await _close(send, CloseCode.TRY_AGAIN_LATER, "instance full")
        return

    session = Session(rt, conn, send)
    try:
        await _run(rt, session, scope, receive, send)
    finally:
        session.close_all()
        rt.hub.disconnect(conn)


async def _run(
    rt: Runtime, session: Session, scope: Scope, receive: Receive, send: Send
) -> None:
    # Subscribe before accepting, so the handshake answer means "registered".
    problem = None
    try:
        query = Query(scope)
        patterns = query.patterns(rt.settings.max_topics, required=False)
        cursor = query.cursor()
        if patterns:
            await session.subscribe(patterns, cursor)
    except InvalidInput as exc:
        problem = (exc.status, f"{exc.field}: {exc.detail}")
    except BrokerUnavailable as exc:
        problem = (503, str(exc))

    accepted = send({"type": "websocket.accept"})
    session.direct = type(accepted).__name__ == _FUTURE
    await accepted
    if rt.draining:
        await _close(send, CloseCode.GOING_AWAY, "server draining, reconnect")
        return
    if problem is not None:
        await session.error(None, *problem)

    reader = asyncio.get_running_loop().create_task(_read(session, receive))
    # If the reader fails, the writer must hear of it now, not at the next event.
    reader.add_done_callback(lambda _: session.conn.wake.set())
    try:
        closing = await _write(session, reader)
    finally:
        reader.cancel()
    if closing is not None:
        with contextlib.suppress(OSError):
            await session.settle()
        await _close(send, closing.code, closing.reason)


async def _read(session: Session, receive: Receive) -> None:
    limit = session.rt.settings.ws_max_frame
    conn = session.conn
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            conn.hang_up()
            return
        if kind != "websocket.receive":
            continue
        text = message.get("text")
        if text is None:
            session.closing = Closing(
                CloseCode.UNSUPPORTED_DATA, "binary frames are not supported"
            )
            conn.wake.set()
            return
        if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
            session.closing = Closing(
                CloseCode.MESSAGE_TOO_BIG, f"frame over {limit} bytes"
            )
            conn.wake.set()
            return
        await session.handle(text)


async def _write(session: Session, reader: asyncio.Task[None]) -> Closing | None:
    """Write events as they come; return how to close, or None if the client left."""
    conn = session.conn
    hub = session.rt.hub
    try:
        while True:
            subs = session.subs
            if (
                not conn.gone
                and session.closing is None
                and not conn.ping_due
                and not any(s.ready or s.ended is not None for s in subs)
            ):
                conn.wake.clear()
                await conn.wake.wait()
            if conn.gone:
                return None
            if session.closing is not None:
                return session.closing
            if reader.done() and reader.exception() is not None:
                log.error("websocket reader failed", exc_info=reader.exception())
                return Closing(CloseCode.SERVER_ERROR, "internal error")
            sent = False
            for sub in subs:
                if sub.ended is EndReason.SLOW:
                    return Closing(
                        CloseCode.TRY_AGAIN_LATER,
                        "subscriber too slow, resume from your cursor",
                    )
                if sub.ended is EndReason.DRAIN:
                    return Closing(CloseCode.GOING_AWAY, "server draining, reconnect")
                if sub.ready:
                    if sub.replaying:
                        items = await hub.next(sub, _PAGE)
                    else:
                        items = sub.take(_PAGE)
                    for item in items:
                        await session.send(encode_item(item))
                    sent = sent or bool(items)
            if session.rt.draining:
                return Closing(CloseCode.GOING_AWAY, "server draining, reconnect")
            if conn.ping_due and not sent:
                await session.send(_PING)
    except OSError:
        return None


async def _close(send: Send, code: CloseCode, reason: str) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "websocket.close", "code": int(code), "reason": reason})
