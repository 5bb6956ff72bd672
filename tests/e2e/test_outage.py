"""NATS outage: publishes are refused, subscribers stay, nothing is missed after.

The test runs its own nats-server on a fixed loopback port and store dir, so
that it can stop it and start it again where Herald expects it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from service.broker.embedded import binary
from tests.conftest import HeraldFactory, free_port
from tests.sse import Parser

from .drive import client, unique_topic, wait_for


class NatsServer:
    """A nats-server with JetStream that keeps its port and store across restarts."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.store.parent / "nats.log").open("ab")
        with log:
            self.proc = subprocess.Popen(
                [
                    *(binary(), "--addr", "127.0.0.1", "--port", str(self.port)),
                    *("--jetstream", "--store_dir", str(self.store)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        for _ in range(1000):
            if time.monotonic() > deadline:
                break
            assert self.proc.poll() is None, "nats-server exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)
        raise AssertionError("nats-server did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def test_outage_refuses_publishes_keeps_subscribers_and_loses_nothing(
    start_herald: HeraldFactory, tmp_path: Path
) -> None:
    nats = NatsServer(tmp_path / "jetstream")
    nats.start()
    try:
        await _outage(start_herald, nats)
    finally:
        nats.stop()


async def _outage(start_herald: HeraldFactory, nats: NatsServer) -> None:
    server = start_herald(nats_url=nats.url)
    topic = unique_topic("outage")
    received: list[str] = []
    gaps: list[str] = []
    opened = asyncio.Event()

    async def subscribe(http: httpx.AsyncClient) -> None:
        url = server.url + "/v1/sse"
        async with http.stream("GET", url, params={"topic": topic}) as response:
            assert response.status_code == 200
            opened.set()
            parser = Parser()
            async for chunk in response.aiter_text():
                for message in parser.feed(chunk):
                    if message.event == "herald.gap":
                        gaps.append(message.data)
                    else:
                        received.append(json.loads(message.data)["id"])
        raise AssertionError("the SSE stream ended during the outage")

    async def publish(http: httpx.AsyncClient, n: int) -> httpx.Response:
        return await http.post(
            f"{server.url}/v1/topics/{topic}/events", json={"data": n}
        )

    acked: list[str] = []
    async with client() as http, client() as streams:
        reader = asyncio.create_task(subscribe(streams))
        try:
            await asyncio.wait_for(opened.wait(), 10)
            for n in range(3):
                response = await publish(http, n)
                assert response.status_code == 201
                acked.append(response.json()["id"])
            await wait_for(_has(received, 3), 10, "the first events arrived")

            down = time.monotonic()
            nats.stop()
            refused: list[httpx.Response] = []
            uncertain = 0

            async def refused_now() -> bool:
                nonlocal uncertain
                response = await publish(http, -1)
                if response.status_code == 201:  # taken: then it must be delivered
                    acked.append(response.json()["id"])
                    return False
                if response.status_code == 504:  # sent as NATS went: maybe stored
                    uncertain += 1
                    return False
                refused.append(response)
                return True

            await wait_for(refused_now, 15, "publish refused while NATS is down")
            refusal = refused[-1]
            refused_after = time.monotonic() - down
            assert refusal.status_code == 503, refusal.text
            assert refusal.headers["retry-after"].isdigit()
            assert refusal.headers["content-type"].startswith(
                "application/problem+json"
            )
            problem = refusal.json()
            assert problem["status"] == 503 and problem["detail"]
            ready = await http.get(server.url + "/readyz")
            assert ready.status_code == 503
            assert not reader.done(), "the subscriber was dropped"

            up = time.monotonic()
            nats.start()

            async def taken_again() -> bool:
                response = await publish(http, 3)
                if response.status_code == 201:
                    acked.append(response.json()["id"])
                    return True
                assert response.status_code == 503, response.text
                return False

            await wait_for(taken_again, 30, "publish taken after NATS came back")
            back_after = time.monotonic() - up
            for n in range(4, 6):
                response = await publish(http, n)
                assert response.status_code == 201, response.text
                acked.append(response.json()["id"])
            await wait_for(
                _has(received, len(acked)), 15, "the subscriber got the new events"
            )
            assert not reader.done()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    assert gaps == []
    # Every acknowledged event, in order; at most the unconfirmed ones besides.
    assert [r for r in received if r in set(acked)] == acked
    assert len(received) - len(acked) <= uncertain
    print(
        f"\noutage: refused {1000 * refused_after:.0f} ms after NATS stopped, "
        f"taken again {1000 * back_after:.0f} ms after it restarted"
    )


def _has(received: list[str], count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(received) >= count

    return check


async def test_a_publish_nats_never_acknowledges_is_504_and_a_keyed_retry_is_safe(
    start_herald: HeraldFactory, tmp_path: Path
) -> None:
    nats = NatsServer(tmp_path / "jetstream")
    nats.start()
    assert nats.proc is not None
    try:
        server = start_herald(nats_url=nats.url)
        topic = unique_topic("unacked")
        url = f"{server.url}/v1/topics/{topic}/events"
        key = {"Idempotency-Key": unique_topic("key")}
        async with client() as http:
            before = (await http.get(server.url + "/v1/cursor")).json()["cursor"]

            # Frozen, not gone: the connection stays up and the ack never comes.
            nats.proc.send_signal(signal.SIGSTOP)
            try:
                unacked = await http.post(
                    url, json={"data": 1}, headers=key, timeout=20
                )
            finally:
                nats.proc.send_signal(signal.SIGCONT)
            assert unacked.status_code == 504, unacked.text
            problem = unacked.json()
            assert "may be stored" in problem["detail"]
            assert "Idempotency-Key" in problem["detail"]

            retry = await http.post(url, json={"data": 1}, headers=key, timeout=20)
            assert retry.status_code == 201, retry.text
            polled = await http.get(
                server.url + "/v1/poll",
                params={"topic": topic, "cursor": before, "timeout": 5},
            )
            events = polled.json()["events"]
            assert [e["id"] for e in events] == [retry.json()["id"]]
            assert events[0]["data"] == 1
    finally:
        nats.stop()
