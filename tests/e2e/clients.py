"""Real clients for the end-to-end tests: REST, an SSE reader and WebSocket helpers.

Every wait is bounded by WAIT seconds: a test that does not get what it
awaits fails with a timeout instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import Herald
from tests.sse import Message, Parser

WAIT = 10.0


class EndOfStream(Exception):
    """The SSE response ended cleanly: after a blank line, with nothing cut."""


def fresh_topic(prefix: str) -> str:
    """A topic no other test publishes to: `prefix.<random token>`."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def seq(event_id: str) -> int:
    """The position part of an event id (`<epoch>-<seq>`), to compare order."""
    return int(event_id.rsplit("-", 1)[1])


def http(server: Herald) -> httpx.AsyncClient:
    """A client for `server` only; environment proxies are ignored."""
    timeout = httpx.Timeout(WAIT, read=60.0)
    return httpx.AsyncClient(base_url=server.url, timeout=timeout, trust_env=False)


async def publish(
    client: httpx.AsyncClient,
    topic: str,
    data: Any,
    type_: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Publish one event over REST; return the stored event the server answers."""
    body = {"data": data} if type_ is None else {"data": data, "type": type_}
    response = await client.post(
        f"/v1/topics/{topic}/events", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = response.json()
    return stored


async def head(client: httpx.AsyncClient) -> str:
    """The cursor just after the newest event."""
    response = await client.get("/v1/cursor")
    assert response.status_code == 200, response.text
    cursor: str = response.json()["cursor"]
    return cursor


def assert_problem(response: httpx.Response, status: int, field: str) -> str:
    """Check an RFC 9457 answer whose detail names `field`; return the detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"] == "about:blank" and problem["title"], problem
    detail: str = problem["detail"]
    assert field in detail, f"{field!r} not named in {detail!r}"
    if status in (400, 413):
        assert field in problem.get("field", ""), f"no field member naming {field!r}"
    return detail


class SseStream:
    """An open SSE response, read in the background through the strict parser."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = Parser()
        self.raw = ""
        self.ended = False
        self._items: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for chunk in self.response.aiter_text():
                self.raw += chunk
                for message in self.parser.feed(chunk):
                    self._items.put_nowait(message)
                self._changed.set()
            self.parser.close()
            self._items.put_nowait(EndOfStream())
        except Exception as exc:
            self._items.put_nowait(exc)
        finally:
            self.ended = True
            self._changed.set()

    async def next(self, wait: float = WAIT) -> Message:
        """The next dispatched message; raise EndOfStream or IncompleteEvent."""
        item = await asyncio.wait_for(self._items.get(), wait)
        if isinstance(item, BaseException):
            raise item
        return item

    async def event(self, wait: float = WAIT) -> tuple[Message, dict[str, Any]]:
        """The next message and its data decoded as JSON."""
        message = await self.next(wait)
        return message, json.loads(message.data)

    async def until(self, condition: Callable[[], bool], wait: float = WAIT) -> None:
        """Return once `condition()` holds, checked each time bytes arrive."""
        async with asyncio.timeout(wait):
            while not condition():
                if self.ended:
                    raise EndOfStream(f"stream ended; got {self.raw[-300:]!r}")
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def sse(
    client: httpx.AsyncClient,
    *patterns: str,
    cursor: str | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SseStream]:
    """Open `GET /v1/sse`; the body is entered once the response headers arrive."""
    params = [("topic", p) for p in patterns]
    if cursor is not None:
        params.append(("cursor", cursor))
    async with client.stream(
        "GET", "/v1/sse", params=params, headers=headers
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        stream = SseStream(response)
        try:
            yield stream
        finally:
            await stream.close()


def ws_url(server: Herald, *patterns: str, cursor: str | None = None) -> str:
    params = [("topic", p) for p in patterns]
    if cursor is not None:
        params.append(("cursor", cursor))
    query = urlencode(params)
    return f"{server.ws_url}/v1/ws" + (f"?{query}" if query else "")


@asynccontextmanager
async def websocket(
    server: Herald, *patterns: str, cursor: str | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to `server`; entered once the handshake answer arrived."""
    url = ws_url(server, *patterns, cursor=cursor)
    async with connect(url, open_timeout=WAIT, proxy=None, **options) as ws:
        yield ws


async def recv(ws: ClientConnection, wait: float = WAIT) -> dict[str, Any]:
    """The next frame other than a server keep-alive ping, decoded."""
    async with asyncio.timeout(wait):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("op") != "ping":
                return frame


async def call(
    ws: ClientConnection, op: dict[str, Any], wait: float = WAIT
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send `op` (which has a `ref`); return the answer with that ref and the
    frames that came before it."""
    await ws.send(json.dumps(op))
    before = []
    async with asyncio.timeout(wait):
        while True:
            frame = await recv(ws, wait)
            if frame.get("op") in ("ack", "error", "pong") and "ref" in frame:
                assert frame["ref"] == op["ref"], frame
                return frame, before
            before.append(frame)


async def recv_event(ws: ClientConnection, wait: float = WAIT) -> dict[str, Any]:
    """The next frame, which must be an event."""
    frame = await recv(ws, wait)
    assert frame["op"] == "event", frame
    return frame


async def subscriptions(client: httpx.AsyncClient) -> int:
    """The server's subscription count, from `herald_subscriptions` in /metrics."""
    return await metric(client, "herald_subscriptions")


async def metric(client: httpx.AsyncClient, name: str) -> int:
    """One unlabelled sample of the server's /metrics."""
    metrics = (await client.get("/metrics")).text
    found = re.search(rf"^{name} (\d+)$", metrics, re.MULTILINE)
    assert found, metrics
    return int(found.group(1))
