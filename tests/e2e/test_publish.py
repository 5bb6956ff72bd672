"""Publishing end to end: answers, idempotency, batches, limits, big events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.conftest import Herald, HeraldFactory

from .clients import (
    assert_problem,
    fresh_topic,
    http,
    publish,
    recv_event,
    seq,
    sse,
    websocket,
)

LIMIT = 64 * 1024


async def test_publish_answers_the_stored_event_without_data(herald: Herald) -> None:
    topic = fresh_topic("pub.one")
    async with http(herald) as client:
        response = await client.post(
            f"/v1/topics/{topic}/events", json={"data": {"a": 1}}
        )
        assert response.status_code == 201
        assert response.headers["content-type"].startswith("application/json")
        stored = response.json()
        assert set(stored) == {"id", "type", "topic", "time"}
        assert (stored["topic"], stored["type"]) == (topic, "message")

        typed = await publish(client, topic, None, type_="a.b_c-D9")
        assert typed["type"] == "a.b_c-D9"
        assert seq(typed["id"]) > seq(stored["id"])


async def test_topics_and_types_at_their_limits_are_taken(herald: Herald) -> None:
    many_tokens = ".".join(["t"] * 15 + [fresh_topic("x").replace(".", "_")])
    longest = fresh_topic("pub").replace(".", "_").ljust(255, "z")
    async with http(herald) as client:
        for topic in (many_tokens, longest):
            stored = await publish(client, topic, 1, type_="T" * 64)
            assert stored["topic"] == topic


async def test_idempotent_retry_returns_the_first_event_once(herald: Herald) -> None:
    topic = fresh_topic("pub.idem")
    key = {"Idempotency-Key": fresh_topic("order-created")}
    async with http(herald) as client, sse(client, topic) as stream:
        first = await client.post(
            f"/v1/topics/{topic}/events", json={"data": 1}, headers=key
        )
        retry = await client.post(
            f"/v1/topics/{topic}/events", json={"data": 1}, headers=key
        )
        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        assert "idempotent-replayed" not in first.headers
        assert retry.headers["idempotent-replayed"] == "true"

        for changed in ({"data": 2}, {"data": 1, "type": "other"}):
            reused = await client.post(
                f"/v1/topics/{topic}/events", json=changed, headers=key
            )
            assert_problem(reused, 422, "Idempotency-Key")

        other = await publish(client, topic, 1, headers={"Idempotency-Key": "other"})
        assert other["id"] != first.json()["id"]
        assert (await stream.next()).id == first.json()["id"]
        assert (await stream.next()).id == other["id"]


def batch_of(topics: list[str], count: int) -> list[dict[str, Any]]:
    return [
        {"topic": topics[i % len(topics)], "type": f"step-{i}", "data": {"i": i}}
        for i in range(count)
    ]


async def test_batch_is_stored_and_delivered_in_order(herald: Herald) -> None:
    topics = [fresh_topic("pub.batch"), fresh_topic("pub.batch")]
    items = batch_of(topics, 12)
    async with http(herald) as client, websocket(herald, *topics) as ws:
        response = await client.post("/v1/events", json=items)
        assert response.status_code == 201, response.text
        stored = response.json()
        assert [(s["topic"], s["type"]) for s in stored] == [
            (i["topic"], i["type"]) for i in items
        ]
        ids = [s["id"] for s in stored]
        assert ids == sorted(ids, key=seq) and len(set(ids)) == len(ids)

        got = [await recv_event(ws) for _ in items]
        assert [e["id"] for e in got] == ids
        assert [e["data"] for e in got] == [i["data"] for i in items]


async def test_batch_retry_with_the_same_key_publishes_once(herald: Herald) -> None:
    topic = fresh_topic("pub.batchkey")
    items = batch_of([topic], 3)
    key = {"Idempotency-Key": fresh_topic("batch")}
    async with http(herald) as client, sse(client, topic) as stream:
        first = await client.post("/v1/events", json=items, headers=key)
        retry = await client.post("/v1/events", json=items, headers=key)
        assert retry.status_code == 201
        assert retry.json() == first.json()
        marker = await publish(client, topic, "marker")
        ids = [(await stream.next()).id for _ in range(4)]
        assert ids == [*(s["id"] for s in first.json()), marker["id"]]


@pytest.mark.parametrize(
    ("bad", "status", "field"),
    [
        ({"topic": "a..b", "data": 1}, 400, "[3].topic"),
        ({"topic": "a.>", "data": 1}, 400, "[3].topic"),
        ({"topic": "a", "data": 1, "type": "herald.gap"}, 400, "[3].type"),
        ({"topic": "a", "data": 1, "type": "x" * 65}, 400, "[3].type"),
        ({"topic": "a", "data": "x" * LIMIT}, 413, "[3].data"),
        ({"topic": "a"}, 422, "data"),
        ({"topic": 7, "data": 1}, 422, "[3].topic"),
        ({"topic": "a", "data": 1, "colour": "red"}, 422, "colour"),
        ("not an object", 422, "[3]"),
    ],
)
async def test_batch_with_one_bad_item_publishes_nothing(
    herald: Herald, bad: Any, status: int, field: str
) -> None:
    topic = fresh_topic("pub.bad")
    items: list[Any] = batch_of([topic], 6)
    items[3] = bad
    async with http(herald) as client, sse(client, topic, "a") as stream:
        response = await client.post("/v1/events", json=items)
        detail = assert_problem(response, status, field)
        if status == 422 and field != "[3]":
            assert "[3]" in detail

        marker = await publish(client, topic, "marker")
        assert (await stream.next()).id == marker["id"]


async def test_data_over_the_limit_is_refused_with_413(herald: Herald) -> None:
    topic = fresh_topic("pub.limit")
    url = f"/v1/topics/{topic}/events"
    async with http(herald) as client, sse(client, topic) as stream:
        largest = await publish(client, topic, "x" * (LIMIT - 2))  # quotes count
        over = await client.post(url, json={"data": "x" * (LIMIT - 1)})
        assert_problem(over, 413, "data")
        far_over = await client.post(url, json={"data": "x" * (4 * LIMIT)})
        assert_problem(far_over, 413, "body")
        # Refused before its body was read: the server drops the connection,
        # so it must say so, or the next request here may go down with it.
        assert far_over.headers["connection"] == "close"

        marker = await publish(client, topic, "marker")
        assert (await stream.next()).id == largest["id"]
        assert (await stream.next()).id == marker["id"]


async def test_batch_over_1000_events_is_refused_with_413(herald: Herald) -> None:
    topic = fresh_topic("pub.many")
    async with http(herald) as client, sse(client, topic) as stream:
        response = await client.post("/v1/events", json=batch_of([topic], 1001))
        assert_problem(response, 413, "body")

        response = await client.post("/v1/events", json=batch_of([topic], 1000))
        assert response.status_code == 201
        stored = response.json()
        assert len(stored) == 1000
        assert (await stream.next()).id == stored[0]["id"]


@pytest.fixture(scope="module")
def roomy(start_herald: HeraldFactory) -> Herald:
    return start_herald(max_event_bytes=262144)


async def test_200_kb_event_arrives_whole_on_every_transport(roomy: Herald) -> None:
    topic = fresh_topic("pub.big")
    chunk = "0123456789abcdef é 😀 \u2028 \n\r \x00 "
    data = {"blob": chunk * (205_000 // (len(msgspec.json.encode(chunk)) - 2)), "n": 1}
    assert 200_000 < len(msgspec.json.encode(data)) < 210_000
    async with (
        http(roomy) as client,
        sse(client, topic) as stream,
        websocket(roomy, topic) as ws,
    ):
        before = (await client.get("/v1/cursor")).json()["cursor"]
        stored = await publish(client, topic, data)

        message, event = await stream.event()
        assert message.id == stored["id"]
        assert event["data"] == data

        frame = await recv_event(ws)
        assert frame["id"] == stored["id"]
        assert frame["data"] == data

        poll = await client.get(
            "/v1/poll", params={"topic": topic, "cursor": before, "timeout": 0}
        )
        assert poll.status_code == 200
        [polled] = poll.json()["events"]
        assert polled["id"] == stored["id"]
        assert polled["data"] == data


async def test_single_and_batch_keys_never_collide(herald: Herald) -> None:
    # Once, a single publish to topic `batch` with key `k/0` and a batch with
    # key `k` shared a dedup id, and the batch's first event was dropped.
    key = fresh_topic("k")
    topic = fresh_topic("pub.collide")
    async with http(herald) as client, sse(client, topic) as stream:
        single = await client.post(
            "/v1/topics/batch/events",
            json={"data": "single"},
            headers={"Idempotency-Key": f"{key}/0"},
        )
        assert single.status_code == 201, single.text
        batch = await client.post(
            "/v1/events",
            json=[
                {"topic": topic, "data": "first"},
                {"topic": topic, "data": "second"},
            ],
            headers={"Idempotency-Key": key},
        )
        assert batch.status_code == 201, batch.text
        assert "idempotent-replayed" not in batch.headers
        stored = [s["id"] for s in batch.json()]
        assert single.json()["id"] not in stored
        got = [await stream.next() for _ in stored]
        assert [m.id for m in got] == stored
        assert [msgspec.json.decode(m.data)["data"] for m in got] == ["first", "second"]
