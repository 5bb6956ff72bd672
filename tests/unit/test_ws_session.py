"""The WebSocket session's direct writes keep frames in order.

The hub writes a live event straight to the socket only when no other
frame is on its way; the futures here stand in for Granian's, which run
without being awaited and say whether they are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any, cast

from service.connection import Connection
from service.event import Event, encode_body, now_rfc3339
from service.runtime import Runtime
from service.transports.websocket import Session


class SendFuture:
    """A send that the test completes when it likes."""

    def __init__(self) -> None:
        self._done = False
        self._callbacks: list[Callable[[object], None]] = []

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[object], None]) -> None:
        self._callbacks.append(callback)

    def finish(self) -> None:
        self._done = True
        for callback in self._callbacks:
            callback(self)

    def __await__(self) -> Generator[Any, None, None]:
        while not self._done:
            yield from asyncio.sleep(0).__await__()


class Socket:
    """Records frames in the order they were handed to the server."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.sends: list[SendFuture] = []

    def __call__(self, message: dict[str, Any]) -> SendFuture:
        self.frames.append(message["text"])
        future = SendFuture()
        self.sends.append(future)
        return future


def event(seq: int) -> Event:
    return Event(seq, "t", encode_body("t", "message", b"1", now_rfc3339()), "e")


def session(socket: Socket) -> Session:
    rt = cast(Runtime, None)  # the session's writes need no runtime
    s = Session(rt, Connection("ws"), socket)  # type: ignore[arg-type]
    s.direct = True
    return s


async def test_direct_write_waits_for_the_last_one() -> None:
    socket = Socket()
    s = session(socket)
    assert s(event(1))
    assert not s(event(2)), "wrote while the last direct write was on its way"
    socket.sends[0].finish()
    assert s(event(2))
    assert socket.frames == [event(1).ws, event(2).ws]


async def test_no_direct_write_ahead_of_a_queued_frame_being_sent() -> None:
    socket = Socket()
    s = session(socket)
    assert s(event(1))

    # The task sends a queued event; it must wait for the direct write...
    sending = asyncio.get_running_loop().create_task(s.send(event(2).ws))
    await asyncio.sleep(0)
    assert socket.frames == [event(1).ws]

    # ...and once that is done, before the task has resumed, the hub must
    # not slip a newer event in ahead of it.
    socket.sends[0].finish()
    assert not s(event(3))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert socket.frames == [event(1).ws, event(2).ws]
    socket.sends[1].finish()
    await sending
    assert s(event(3))
    assert socket.frames == [event(1).ws, event(2).ws, event(3).ws]


async def test_no_direct_write_on_a_closing_or_gone_connection() -> None:
    socket = Socket()
    s = session(socket)
    s.conn.hang_up()
    assert not s(event(1))
    assert socket.frames == []
