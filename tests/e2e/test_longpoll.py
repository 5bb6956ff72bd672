"""Long polling against a real server: nothing lost between polls, quick wakes."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import httpx
import pytest

from tests.conftest import Herald

from .drive import (
    client,
    connections,
    head,
    metrics,
    publish,
    publish_until,
    subscriptions,
    unique_topic,
    wait_for,
)

POLLERS = 200
WAKE_BUDGET = 0.250


async def poll(
    http: httpx.AsyncClient, server: Herald, topic: str, cursor: str, **params: object
) -> httpx.Response:
    response = await http.get(
        server.url + "/v1/poll",
        params={"topic": topic, "cursor": cursor, **params},
    )
    assert response.status_code == 200, response.text
    return response


async def test_polls_under_concurrent_publishing_lose_and_repeat_nothing(
    herald: Herald,
) -> None:
    topic = unique_topic("polls")
    async with client() as http:
        start = await head(http, herald.url)
        stop = asyncio.Event()
        publisher = asyncio.create_task(
            publish_until([herald.url], topic, stop, interval=0.001, max_events=300)
        )

        async def poller(limit: int) -> list[str]:
            ids: list[str] = []
            cursor = start
            for _ in range(2000):
                if publisher.done() and len(ids) >= len(publisher.result()):
                    return ids
                response = await poll(
                    http, herald, topic, cursor, limit=limit, timeout=1
                )
                body = response.json()
                assert body["gap"] is False
                ids.extend(event["id"] for event in body["events"])
                cursor = body["cursor"]
            raise AssertionError("poller did not catch up")

        # Pollers that take one, a few, and many events per answer.
        results = await asyncio.wait_for(
            asyncio.gather(*(poller(limit) for limit in (1, 3, 7, 100))), 60
        )
        published = await publisher

    assert len(published) == 300
    for ids in results:
        assert ids == published


async def test_200_pollers_each_wake_within_250_ms_of_their_publish(
    herald: Herald,
) -> None:
    prefix = unique_topic("wake")
    topics = [f"{prefix}.{i}" for i in range(POLLERS)]
    answered: dict[str, float] = {}
    limits = httpx.Limits(max_connections=POLLERS + 10, max_keepalive_connections=0)
    async with client(limits=limits) as polls, client() as http:
        cursor = await head(http, herald.url)
        before = await metrics(http, herald.url)

        async def waiter(topic: str) -> httpx.Response:
            response = await poll(polls, herald, topic, cursor, timeout=30)
            answered[topic] = time.monotonic()
            return response

        waiting = [asyncio.create_task(waiter(t)) for t in topics]

        async def all_waiting() -> bool:
            now = await metrics(http, herald.url)
            return (
                connections(now, "poll") == connections(before, "poll") + POLLERS
                and subscriptions(now) == subscriptions(before) + POLLERS
            )

        await wait_for(all_waiting, 20, f"{POLLERS} polls waiting")
        assert not answered, "a poll was answered before its publish"

        acked: dict[str, str] = {}
        acked_at: dict[str, float] = {}
        for topic in topics:
            acked[topic] = await publish(http, herald.url, topic, topic)
            acked_at[topic] = time.monotonic()
        responses = await asyncio.wait_for(asyncio.gather(*waiting), 30)

    # Signed: a wake can reach its poller before the publish ack does.
    latencies = []
    for topic, response in zip(topics, responses, strict=True):
        body = response.json()
        assert [e["id"] for e in body["events"]] == [acked[topic]]
        assert body["events"][0]["data"] == topic
        assert body["cursor"] == acked[topic]
        latencies.append(answered[topic] - acked_at[topic])
    worst = max(latencies)
    print(
        f"\n{POLLERS} pollers, publish ack to answer: "
        f"p50 {1000 * statistics.median(latencies):.1f} ms, "
        f"max {1000 * worst:.1f} ms, min {1000 * min(latencies):.1f} ms"
    )
    slow = [t for t, lat in zip(topics, latencies, strict=True) if lat > WAKE_BUDGET]
    assert slow == [], f"{len(slow)} pollers woke later than 250 ms, worst {worst}"


async def test_timeout_zero_answers_at_once(herald: Herald) -> None:
    topic = unique_topic("zero")
    async with client() as http:
        cursor = await head(http, herald.url)
        started = time.monotonic()
        response = await poll(http, herald, topic, cursor, timeout=0)
        took = time.monotonic() - started

    assert took < 0.5, f"timeout=0 took {took:.3f} s"
    assert response.json() == {"events": [], "cursor": cursor, "gap": False}
    assert response.headers["cache-control"] == "no-store"


async def test_timeout_answers_with_no_events_and_the_same_cursor(
    herald: Herald,
) -> None:
    topic = unique_topic("quiet")
    async with client() as http:
        cursor = await head(http, herald.url)
        started = time.monotonic()
        response = await poll(http, herald, topic, cursor, timeout=1)
        took = time.monotonic() - started

    assert 0.9 <= took < 2.5, f"timeout=1 took {took:.3f} s"
    assert response.json() == {"events": [], "cursor": cursor, "gap": False}
    assert response.headers["cache-control"] == "no-store"


def position(cursor: str) -> tuple[str, int]:
    epoch, _, seq = cursor.rpartition("-")
    return epoch, int(seq)


async def test_timeout_cursor_moves_only_past_other_topics(herald: Herald) -> None:
    """Events of other topics may move the answered cursor forward (it is a
    position in the whole log), never past an event of the polled topic."""
    topic = unique_topic("quiet")
    async with client() as http:
        cursor = await head(http, herald.url)
        await publish(http, herald.url, unique_topic("other"))
        response = await poll(http, herald, topic, cursor, timeout=1)
        body = response.json()
        newest = await head(http, herald.url)
        ours = await publish(http, herald.url, topic, "ours")
        after = await poll(http, herald, topic, body["cursor"], timeout=5)

    assert body["events"] == [] and body["gap"] is False
    epoch, seq = position(body["cursor"])
    assert epoch == position(cursor)[0]
    assert position(cursor)[1] <= seq <= position(newest)[1]
    assert [e["id"] for e in after.json()["events"]] == [ours]


@pytest.mark.parametrize("wait", [0, 5])
async def test_events_already_there_are_answered_at_once(
    herald: Herald, wait: int
) -> None:
    topic = unique_topic("ready")
    async with client() as http:
        cursor = await head(http, herald.url)
        ids = [await publish(http, herald.url, topic, i) for i in range(3)]
        started = time.monotonic()
        response = await poll(http, herald, topic, cursor, timeout=wait)
        took = time.monotonic() - started

    assert took < 0.5
    body = response.json()
    assert [e["id"] for e in body["events"]] == ids
    assert [e["data"] for e in body["events"]] == [0, 1, 2]
    assert body["cursor"] == ids[-1]
    assert response.headers["cache-control"] == "no-store"


async def test_client_gone_frees_a_waiting_poll_at_once(herald: Herald) -> None:
    topic = unique_topic("gone")
    async with client() as http, client() as polls:
        before = await metrics(http, herald.url)
        cursor = await head(http, herald.url)
        waiting = asyncio.create_task(poll(polls, herald, topic, cursor, timeout=50))

        async def counts(extra: int) -> bool:
            now = await metrics(http, herald.url)
            return (
                connections(now, "poll") == connections(before, "poll") + extra
                and subscriptions(now) == subscriptions(before) + extra
            )

        await wait_for(lambda: counts(1), 5, "the poll is waiting")
        waiting.cancel()
        gone = time.monotonic()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await wait_for(lambda: counts(0), 1.0, "the poll's subscription was freed")
        print(f"\npoll: freed {1000 * (time.monotonic() - gone):.0f} ms after leaving")
