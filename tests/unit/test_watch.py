"""Disconnect watching works on Granian's callback futures and on coroutines."""

from __future__ import annotations

import asyncio
from typing import Any

from service.connection import Connection
from service.transports.asgi import Message, watch_disconnect


def messages(*kinds: str) -> list[Message]:
    return [{"type": kind} for kind in kinds]


async def test_callback_futures_are_watched_without_a_task() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Message]] = []

    def receive() -> asyncio.Future[Message]:
        futures.append(loop.create_future())
        return futures[-1]

    conn = Connection("sse")
    tasks = len(asyncio.all_tasks())
    watch = watch_disconnect(receive, conn)  # type: ignore[arg-type]
    assert len(asyncio.all_tasks()) == tasks

    futures[0].set_result({"type": "http.request", "body": b""})
    await asyncio.sleep(0)
    assert len(futures) == 2 and not conn.gone

    futures[1].set_result({"type": "http.disconnect"})
    await asyncio.sleep(0)
    assert conn.gone and conn.wake.is_set()
    watch.cancel()


async def test_cancelled_watch_ignores_a_late_disconnect() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Message] = loop.create_future()
    conn = Connection("poll")
    watch = watch_disconnect(lambda: future, conn)  # type: ignore[arg-type,return-value]
    watch.cancel()
    await asyncio.sleep(0)
    assert future.cancelled() and not conn.gone


async def test_coroutine_receive_is_watched_by_a_task() -> None:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages("http.request", "http.request"):
        queue.put_nowait(message)

    async def receive() -> Any:
        return await queue.get()

    conn = Connection("sse")
    watch = watch_disconnect(receive, conn)
    assert isinstance(watch, asyncio.Task)
    await asyncio.sleep(0)
    assert not conn.gone

    queue.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(watch, 1)
    assert conn.gone
