"""SIGTERM drain, measured: every stream ends cleanly, then the process exits 0.

Each test starts its own Herald, opens SSE streams, WebSockets and a waiting
long poll while events flow, sends SIGTERM and checks what each client saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest
import websockets.exceptions

from tests.conftest import Herald, HeraldFactory
from tests.sse import Parser

from .drive import (
    client,
    connections,
    head,
    metrics,
    publish,
    unique_topic,
    wait_for,
    ws_connect,
)

DRAIN_SECONDS = 5.0
RETRY_MS = 3000
STREAMS = 3


@dataclass
class Seen:
    """What one streaming client saw, and when its stream ended."""

    ids: list[str] = field(default_factory=list)
    raw: str = ""
    opened: bool = False
    ended: float = 0.0
    close_code: int | None = None
    close_reason: str = ""


async def hold_sse(
    http: httpx.AsyncClient, server: Herald, topic: str, seen: Seen
) -> None:
    parser = Parser()
    url = server.url + "/v1/sse"
    async with http.stream("GET", url, params={"topic": topic}) as response:
        assert response.status_code == 200
        seen.opened = True
        async for chunk in response.aiter_text():
            seen.raw += chunk
            seen.ids.extend(m.id or "" for m in parser.feed(chunk))
    seen.ended = time.monotonic()
    parser.close()  # raises if the stream stopped inside an event


async def hold_ws(server: Herald, topic: str, seen: Seen) -> None:
    async with ws_connect(f"{server.ws_url}/v1/ws?topic={topic}") as ws:
        seen.opened = True
        try:
            async for frame in ws:
                message = json.loads(frame)
                if message["op"] == "event":
                    seen.ids.append(message["id"])
        except websockets.exceptions.ConnectionClosed:
            pass
        seen.ended = time.monotonic()
        exc = ws.close_exc
        assert exc.rcvd is not None, f"no close frame from the server: {exc}"
        seen.close_code = exc.rcvd.code
        seen.close_reason = exc.rcvd.reason


async def keep_publishing(
    server: Herald, topic: str, ids: list[str], stop: asyncio.Event, sent: list[float]
) -> None:
    """Publish every 5 ms until `stop`; after SIGTERM (`sent`), refusals are fine."""
    async with client() as http:
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                ids.append(await publish(http, server.url, topic, len(ids)))
            except (httpx.HTTPError, AssertionError):
                if not sent:
                    raise
                return
            await asyncio.sleep(0.005)


async def readyz_turns(http: httpx.AsyncClient, server: Herald) -> float:
    """Seconds until /readyz answers 503 or refuses connections."""
    start = time.monotonic()

    async def unready() -> bool:
        try:
            response = await http.get(server.url + "/readyz")
        except httpx.HTTPError:
            return True
        return response.status_code == 503

    await wait_for(unready, DRAIN_SECONDS, "/readyz turned 503 or refused")
    return time.monotonic() - start


def last_block(raw: str) -> list[str]:
    """The lines of the stream's last block, the one after the last event."""
    assert raw.endswith("\n\n"), repr(raw[-80:])
    return raw[:-2].rsplit("\n\n", 1)[-1].split("\n")


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_ends_every_stream_cleanly_and_exits_zero(
    start_herald: HeraldFactory, workers: int
) -> None:
    server = start_herald(
        "--workers", str(workers), drain_seconds=DRAIN_SECONDS, retry_ms=RETRY_MS
    )
    topic = unique_topic("drain")
    sse = [Seen() for _ in range(STREAMS)]
    ws = [Seen() for _ in range(STREAMS)]
    published: list[str] = []
    stop = asyncio.Event()
    sent: list[float] = []

    async with client() as http, client() as streams, client() as polls:
        holders = [
            asyncio.create_task(hold_sse(streams, server, topic, s)) for s in sse
        ]
        holders += [asyncio.create_task(hold_ws(server, topic, s)) for s in ws]
        tasks: list[asyncio.Future[object]] = list(holders)
        try:
            poll_topic = topic + ".poll"
            poll_cursor = await head(http, server.url)
            poll = asyncio.create_task(
                polls.get(
                    server.url + "/v1/poll",
                    params={
                        "topic": poll_topic,
                        "cursor": poll_cursor,
                        "timeout": "50",
                    },
                )
            )
            tasks.append(poll)

            async def all_open() -> bool:
                return all(s.opened for s in sse + ws)

            await wait_for(all_open, 10, "every stream opened")

            async def poll_waits() -> bool:
                # A fresh connection each time, so that scrapes reach every worker.
                async with client() as scrape:
                    return connections(await metrics(scrape, server.url), "poll") == 1

            await wait_for(poll_waits, 10, "the long poll is waiting on a worker")

            publisher = asyncio.create_task(
                keep_publishing(server, topic, published, stop, sent)
            )
            tasks.append(publisher)

            async def events_flow() -> bool:
                return all(len(s.ids) >= 5 for s in sse + ws)

            await wait_for(events_flow, 10, "every stream received events")

            sent.append(time.monotonic())
            server.signal(signal.SIGTERM)
            exit_code = asyncio.create_task(
                asyncio.to_thread(server.proc.wait, DRAIN_SECONDS + 10)
            )
            unready_after = await readyz_turns(http, server)
            # A stream opened now is refused, not served.
            with contextlib.suppress(httpx.HTTPError):
                late = await http.get(server.url + "/v1/sse", params={"topic": topic})
                assert late.status_code == 503, late.text

            async with asyncio.timeout(DRAIN_SECONDS + 10):
                answer = await poll
                polled = time.monotonic()
                await asyncio.gather(*holders)
                code = await exit_code
            exited = time.monotonic()
            stop.set()
            await publisher
        finally:
            stop.set()
            for task in tasks:
                task.cancel()  # only tasks left by a failure: the rest are done
            await asyncio.gather(*tasks, return_exceptions=True)

    t0 = sent[0]
    assert code == 0, server.log.read_text()
    assert exited - t0 < DRAIN_SECONDS, f"exit took {exited - t0:.2f} s"

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"events": [], "cursor": poll_cursor, "gap": False}

    for s in sse:
        # Everything delivered is a prefix of what was published, in order.
        assert s.ids == published[: len(s.ids)]
        block = last_block(s.raw)
        retry = [line for line in block if line.startswith("retry:")]
        assert retry, f"no retry hint at the end: {block}"
        assert RETRY_MS // 2 <= int(retry[0].split(":")[1]) <= RETRY_MS * 3 // 2
        assert not any(line.startswith(("data:", "id:")) for line in block)
    for s in ws:
        assert s.ids == published[: len(s.ids)]
        assert s.close_code == 1001
        assert s.close_reason.strip()

    ends = [s.ended - t0 for s in sse + ws]
    print(
        f"\nworkers={workers}: /readyz unready {1000 * unready_after:.0f} ms, "
        f"poll answered {1000 * (polled - t0):.0f} ms, streams ended "
        f"{1000 * min(ends):.0f}-{1000 * max(ends):.0f} ms, "
        f"exit {1000 * (exited - t0):.0f} ms after SIGTERM "
        f"(grace {DRAIN_SECONDS:.0f} s); {len(published)} events published"
    )
