"""Light asyncio clients for the bench: HTTP/1.1, SSE, WebSocket, poll, publish.

They do as little as a client can, so that the bench measures the server:
HTTP is written and parsed by hand on keep-alive connections, and the SSE
and WebSocket subscribers are protocols (`SseStream`, `WsStream`) that parse
their bytes as they arrive, without a coroutine switch per event. Each
subscriber records what it gets in a `Tally`.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote

import msgspec
from sse_stream import SseStream
from stream import HttpError, Stream, parse_head
from wire import Stamp, encode
from ws_stream import WsClosed, WsStream

# Reconnects one subscriber makes before it gives up, so a broken server
# cannot keep a run busy.
MAX_RECONNECTS = 20
# Seconds a subscriber may take to connect and get its answer's head.
OPEN_TIMEOUT = 60


class Target(NamedTuple):
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class BenchEvent(msgspec.Struct):
    id: str
    data: Stamp


class BenchFrame(msgspec.Struct):
    op: str
    id: str = ""
    data: Stamp | None = None


class Ack(msgspec.Struct):
    id: str
    topic: str


class BenchPoll(msgspec.Struct):
    events: list[BenchEvent]
    cursor: str
    gap: bool = False


_event = msgspec.json.Decoder(BenchEvent).decode
_frame = msgspec.json.Decoder(BenchFrame).decode
_poll = msgspec.json.Decoder(BenchPoll).decode
decode_ack = msgspec.json.Decoder(Ack).decode
decode_acks = msgspec.json.Decoder(list[Ack]).decode


class Stats:
    """What all subscribers of one run received."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.deliveries = 0
        self.unique = 0
        self.disordered = 0
        self.gaps = 0
        self.reconnects = 0
        self.errors = 0
        self.last_at = 0.0


class Tally:
    """One subscriber's position and counts; events must come in id order."""

    __slots__ = ("cursor", "last", "stats")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.cursor = ""
        self.last = 0

    def event(self, event_id: str, stamp: Stamp, now: float) -> None:
        stats = self.stats
        stats.deliveries += 1
        stats.last_at = now
        stats.latencies.append(now - stamp.t)
        seq = int(event_id.rpartition("-")[2])
        if seq > self.last:
            self.last = seq
            self.cursor = event_id
            stats.unique += 1
        else:
            stats.disordered += 1


class Http:
    """One keep-alive HTTP/1.1 connection; bodies must have a Content-Length."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b""
    ) -> tuple[int, bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(*self.target)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.target.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        status, headers = await read_head(self._reader)
        length = int(headers.get(b"content-length", b"0"))
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    return parse_head(raw[:-4])


async def sse(
    target: Target, topic: str, tally: Tally, ready: Callable[[], None]
) -> None:
    """Read one SSE stream, reconnecting with Last-Event-ID when it ends."""
    stats = tally.stats

    def handle(kind: str, data: bytes, now: float) -> None:
        if kind == "herald.gap":
            stats.gaps += 1
        else:
            event = _event(data)
            tally.event(event.id, event.data, now)

    for attempt in range(MAX_RECONNECTS + 1):
        if attempt:
            stats.reconnects += 1
            await asyncio.sleep(0.1)
        resume = f"Last-Event-ID: {tally.cursor}\r\n" if tally.cursor else ""
        request = (
            f"GET /v1/sse?topic={quote(topic)} HTTP/1.1\r\n"
            f"Host: {target.netloc}\r\nAccept: text/event-stream\r\n"
            f"{resume}\r\n"
        )
        if not await _follow(target, SseStream(request.encode(), handle), ready):
            stats.errors += 1


async def ws(
    target: Target, topic: str, tally: Tally, ready: Callable[[], None]
) -> None:
    """Read one WebSocket subscription, reconnecting with its cursor.

    A close with a code of `RESUMABLE` is a normal end; any other close, or a
    connection lost without a close frame, counts as an error.
    """
    stats = tally.stats

    def handle(data: bytes, now: float) -> None:
        frame = _frame(data)
        if frame.op == "event" and frame.data is not None:
            tally.event(frame.id, frame.data, now)
        elif frame.op == "gap":
            stats.gaps += 1

    for attempt in range(MAX_RECONNECTS + 1):
        if attempt:
            stats.reconnects += 1
            await asyncio.sleep(0.1)
        query = f"topic={quote(topic)}"
        if tally.cursor:
            query += f"&cursor={tally.cursor}"
        stream = WsStream(target.netloc, f"/v1/ws?{query}", handle)
        if not await _follow(target, stream, ready):
            stats.errors += 1


async def _follow(target: Target, stream: Stream, ready: Callable[[], None]) -> bool:
    """Open `stream`, call `ready` once it is open, and wait for its end.

    False when it could not open or did not end cleanly.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            await loop.create_connection(lambda: stream, *target)
            await stream.opened
        ready()
        await stream.ended
    except (OSError, EOFError, HttpError, WsClosed, ValueError, TimeoutError):
        return False
    finally:
        stream.close()
    return True


def poll(timeout: int, start: str) -> Callable[..., Awaitable[None]]:
    """A long-poll subscriber starting after cursor `start`."""

    async def run(
        target: Target, topic: str, tally: Tally, ready: Callable[[], None]
    ) -> None:
        stats = tally.stats
        http = Http(target)
        cursor = start
        ready()
        failures = 0
        try:
            while failures <= MAX_RECONNECTS:
                path = (
                    f"/v1/poll?topic={quote(topic)}&cursor={cursor}"
                    f"&timeout={timeout}&limit=1000"
                )
                try:
                    status, body = await http.request("GET", path)
                    if status != 200:
                        raise HttpError(status)
                except (OSError, asyncio.IncompleteReadError, HttpError):
                    stats.errors += 1
                    failures += 1
                    http.close()
                    await asyncio.sleep(0.2)
                    continue
                now = time.time()
                answer = _poll(body)
                if answer.gap:
                    stats.gaps += 1
                for event in answer.events:
                    tally.event(event.id, event.data, now)
                cursor = answer.cursor
        finally:
            http.close()

    return run


@dataclass
class Published:
    per_topic: list[int]
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    seconds: float = 0.0


async def publish(
    target: Target,
    topics: list[str],
    events: int,
    rate: float,
    concurrency: int,
    batch: int,
) -> Published:
    """Publish `events` stamped events round-robin over `topics`.

    At `rate` events per second when given, else as fast as `concurrency`
    keep-alive connections get answers; `batch` > 1 uses `POST /v1/events`.
    """
    out = Published(per_topic=[0] * len(topics))
    jobs = iter(range(math.ceil(events / batch)))
    # Paced runs start their clock a moment ahead, so that every sender is
    # ready by then; unpaced ones start sending at once.
    started = time.perf_counter() + (0.01 if rate > 0 else 0.0)

    async def sender() -> None:
        http = Http(target)
        try:
            for job in jobs:
                first = job * batch
                numbers = range(first, min(first + batch, events))
                if rate > 0:
                    delay = started + first / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await _send(http, topics, numbers, batch, out)
        finally:
            http.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    out.seconds = time.perf_counter() - started
    return out


async def _send(
    http: Http, topics: list[str], numbers: range, batch: int, out: Published
) -> None:
    now = time.time()
    if batch == 1:
        n = numbers[0]
        path = f"/v1/topics/{topics[n % len(topics)]}/events"
        body = encode({"data": {"t": now, "n": n}})
    else:
        path = "/v1/events"
        body = encode(
            [
                {"topic": topics[n % len(topics)], "data": {"t": now, "n": n}}
                for n in numbers
            ]
        )
    sent = time.perf_counter()
    try:
        status, answer = await http.request("POST", path, body)
    except (OSError, asyncio.IncompleteReadError):
        out.errors += len(numbers)
        http.close()
        return
    out.latencies.append(time.perf_counter() - sent)
    if status != 201:
        out.errors += len(numbers)
        return
    acks = decode_acks(answer) if batch > 1 else [decode_ack(answer)]
    index = {t: i for i, t in enumerate(topics)} if len(topics) > 1 else None
    for ack in acks:
        out.per_topic[index[ack.topic] if index else 0] += 1
