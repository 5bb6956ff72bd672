"""The floor of the stack: a bare Granian ASGI app that fans events out.

It speaks just enough of Herald's API for `bench.py --url` (publish, SSE,
WebSocket, /readyz, /v1/cursor) with no Litestar, hub, NATS or checks, so
that bench figures against it show what Granian and uvloop cost by
themselves. Not a server to use: it keeps no history and bounds nothing.

    uv run python loadtests/floor.py PORT
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

Scope = dict[str, Any]


class Client:
    __slots__ = ("queue", "wake", "ws")

    def __init__(self, ws: bool) -> None:
        self.queue: list[Any] = []
        self.wake = asyncio.Event()
        self.ws = ws


clients: set[Client] = set()
last = 0


async def _reply(send: Any, status: int, body: bytes) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [length]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _publish(scope: Scope, receive: Any, send: Any) -> None:
    global last
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break

    last += 1
    topic = scope["path"].split("/")[3]
    data = json.loads(body)["data"]
    event = json.dumps({"id": f"e-{last}", "topic": topic, "data": data})
    chunk = f"id: e-{last}\nevent: message\ndata: {event}\n\n".encode()
    frame = '{"op":"event",' + event[1:]
    for client in clients:
        client.queue.append(frame if client.ws else chunk)
        client.wake.set()
    await _reply(send, 201, json.dumps({"id": f"e-{last}", "topic": topic}).encode())


async def _stream(client: Client, send: Any) -> None:
    while True:
        if not client.queue:
            client.wake.clear()
            await client.wake.wait()
        items, client.queue = client.queue, []
        if client.ws:
            for frame in items:
                await send({"type": "websocket.send", "text": frame})
        else:
            body = b"".join(items)
            await send({"type": "http.response.body", "body": body, "more_body": True})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path in ("/readyz", "/v1/cursor"):
        await _reply(send, 200, json.dumps({"cursor": f"e-{last}"}).encode())
        return
    if scope.get("method") == "POST":
        await _publish(scope, receive, send)
        return

    client = Client(ws=scope["type"] == "websocket")
    if client.ws:
        await receive()
        await send({"type": "websocket.accept"})
    else:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": b"retry: 1000\n\n",
                "more_body": True,
            }
        )
    clients.add(client)
    # Like Herald, keep a receive pending: it is how a server learns that
    # the client left, and on WebSocket how it reads the client's frames.
    reader = asyncio.get_running_loop().create_task(_drain(receive))
    try:
        await _stream(client, send)
    finally:
        reader.cancel()
        clients.discard(client)


async def _drain(receive: Any) -> None:
    while (await receive())["type"] not in ("http.disconnect", "websocket.disconnect"):
        pass


if __name__ == "__main__":
    from granian import Granian
    from granian.constants import Interfaces

    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    Granian(
        "floor:app",
        address="127.0.0.1",
        port=int(sys.argv[1]),
        interface=Interfaces.ASGI,
        workers=1,
        backlog=2048,
        backpressure=50000,
        working_dir=Path(__file__).parent,
    ).serve()
