"""Resume races: a client that keeps dropping and resuming misses nothing.

A publisher publishes every few milliseconds while one client disconnects
at random moments and resumes from the last id it saw, 50 times, on every
transport, on one worker, on two workers and across two instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.conftest import Herald, HeraldFactory
from tests.sse import stream

from .drive import (
    client,
    connections,
    head,
    metrics,
    publish_until,
    subscriptions,
    unique_topic,
    wait_for,
    ws_connect,
)

RECONNECTS = 50


class Reader:
    """What one racing client has seen: event ids in order, and its cursor."""

    def __init__(self, topic: str, cursor: str) -> None:
        self.topic = topic
        self.first = cursor
        self.cursor = cursor
        self.ids: list[str] = []
        self.gaps: list[str] = []
        self.sessions_with_events = 0

    def take(self, event: dict[str, object]) -> None:
        assert event["topic"] == self.topic, event
        event_id = str(event["id"])
        self.ids.append(event_id)
        self.cursor = event_id


Read = Callable[[httpx.AsyncClient, Herald, Reader, int], Awaitable[None]]


async def read_sse(http: httpx.AsyncClient, server: Herald, r: Reader, n: int) -> None:
    """Odd attempts resume with `cursor`; even ones with Last-Event-ID, next to
    a stale `cursor` that the header must override."""
    params = {"topic": r.topic, "cursor": r.cursor if n % 2 else r.first}
    headers = {} if n % 2 else {"Last-Event-ID": r.cursor}
    url = server.url + "/v1/sse"
    async for message in stream(http, url, params=params, headers=headers):
        if message.event == "herald.gap":
            r.gaps.append(message.data)
            continue
        event = json.loads(message.data)
        assert message.id == event["id"], message
        r.take(event)


async def read_ws(http: httpx.AsyncClient, server: Herald, r: Reader, n: int) -> None:
    """Odd attempts resume with `cursor` in the URL; even ones subscribe with
    a `subscribe` op carrying the cursor."""
    if n % 2:
        url = f"{server.ws_url}/v1/ws?topic={r.topic}&cursor={r.cursor}"
        first = None
    else:
        url = f"{server.ws_url}/v1/ws"
        first = {"op": "subscribe", "topics": [r.topic], "cursor": r.cursor}
    async with ws_connect(url) as ws:
        if first is not None:
            await ws.send(json.dumps({**first, "ref": n}))
        async for frame in ws:
            message = json.loads(frame)
            op = message.pop("op")
            if op == "event":
                r.take(message)
            elif op == "gap":
                r.gaps.append(frame)  # type: ignore[arg-type]
            else:
                assert op in ("ack", "ping"), message


async def read_poll(http: httpx.AsyncClient, server: Herald, r: Reader, n: int) -> None:
    """Poll in a loop with small, varying limits, resuming from each answer."""
    for i in range(10_000):
        response = await http.get(
            server.url + "/v1/poll",
            params={
                "topic": r.topic,
                "cursor": r.cursor,
                "timeout": "2",
                "limit": str(1 + (n + i) % 17),
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if body["gap"]:
            r.gaps.append(response.text)
        for event in body["events"]:
            r.take(event)
        r.cursor = body["cursor"]


READERS: dict[str, Read] = {"sse": read_sse, "ws": read_ws, "poll": read_poll}


async def race(servers: list[Herald], transport: str, seed: int, label: str) -> Reader:
    """Run the race; return what the client saw, checked against the publishes."""
    rng = random.Random(seed)
    read = READERS[transport]
    topic = unique_topic("race")
    async with client() as http:
        reader = Reader(topic, await head(http, servers[0].url))
        stop = asyncio.Event()
        publisher = asyncio.create_task(
            publish_until([s.url for s in servers], topic, stop)
        )
        try:
            for attempt in range(RECONNECTS):
                seen = len(reader.ids)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rng.uniform(0.01, 0.08)):
                        await read(http, rng.choice(servers), reader, attempt)
                reader.sessions_with_events += len(reader.ids) > seen
        finally:
            stop.set()
            published = await publisher

        # One last session, on any instance, to collect the tail.
        tail = asyncio.create_task(read(http, rng.choice(servers), reader, 1))
        try:

            async def caught_up() -> bool:
                if tail.done():
                    tail.result()  # surface the reader's failure, if any
                    raise AssertionError("the last session ended early")
                return len(reader.ids) >= len(published)

            await wait_for(caught_up, 15, "the client caught up with the publisher")
        finally:
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail

    assert reader.gaps == []
    duplicates = len(reader.ids) - len(set(reader.ids))
    assert duplicates == 0, f"{duplicates} events delivered twice"
    missing = sorted(set(published) - set(reader.ids))
    assert missing == [], f"{len(missing)} events lost, first {missing[:5]}"
    assert reader.ids == published
    assert len(published) > RECONNECTS, "too few events for a race"
    assert reader.sessions_with_events >= RECONNECTS // 5, "few sessions saw events"
    print(
        f"\nrace {transport} on {label}: {len(published)} events, "
        f"{RECONNECTS} reconnects, {reader.sessions_with_events} sessions "
        "saw events"
    )
    return reader


@pytest.fixture(scope="module")
def one(herald: Herald) -> list[Herald]:
    return [herald]


@pytest.fixture(scope="module")
def two_workers(start_herald: HeraldFactory) -> list[Herald]:
    return [start_herald("--workers", "2")]


@pytest.fixture(scope="module")
def two_instances(start_herald: HeraldFactory) -> list[Herald]:
    shared = "R" + random.Random().randbytes(6).hex()
    return [start_herald(stream=shared), start_herald(stream=shared)]


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
@pytest.mark.parametrize("topology", ["one", "two_workers", "two_instances"])
async def test_resume_race_loses_and_repeats_nothing(
    request: pytest.FixtureRequest, topology: str, transport: str
) -> None:
    servers: list[Herald] = request.getfixturevalue(topology)
    seed = random.randrange(1 << 32)
    print(f"\nseed {seed}")
    await race(servers, transport, seed, topology)


async def _hold_sse(http: httpx.AsyncClient, server: Herald, topic: str) -> None:
    url = server.url + "/v1/sse"
    async with http.stream("GET", url, params={"topic": topic}) as response:
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            pass


async def _hold_ws(server: Herald, topic: str, abort: bool) -> None:
    async with ws_connect(f"{server.ws_url}/v1/ws?topic={topic}") as ws:
        try:
            await ws.recv()
        finally:
            if abort:
                ws.transport.abort()  # a dropped TCP connection, no close frame


@pytest.mark.parametrize("how", ["sse", "ws-close", "ws-abort"])
async def test_client_gone_frees_its_subscription_at_once(
    herald: Herald, how: str
) -> None:
    topic = unique_topic("gone")
    async with client() as http:
        before = await metrics(http, herald.url)
        transport = how.split("-")[0]

        async def counts(conns: float, subs: float) -> bool:
            now = await metrics(http, herald.url)
            return connections(now, transport) == conns and subscriptions(now) == subs

        if how == "sse":
            holder = asyncio.create_task(_hold_sse(http, herald, topic))
        else:
            holder = asyncio.create_task(_hold_ws(herald, topic, how == "ws-abort"))
        base_conns = connections(before, transport)
        base_subs = subscriptions(before)
        await wait_for(
            lambda: counts(base_conns + 1, base_subs + 1), 5, "the subscription opened"
        )

        holder.cancel()
        gone = time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        await wait_for(
            lambda: counts(base_conns, base_subs), 1.0, "the subscription was freed"
        )
        print(f"\n{how}: freed {1000 * (time.monotonic() - gone):.0f} ms after leaving")
