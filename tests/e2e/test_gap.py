"""Gap notices end to end: an evicted or foreign cursor is reported on every
transport, then delivery goes on from the oldest event still retained."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Herald, HeraldFactory

from .clients import call, head, http, publish, recv, recv_event, sse, websocket

KEPT = 3
FEED = "gap.feed"  # the only topic of the `small` server, so its history is FEED's
FOREIGN = "zz0-1"  # a well-formed cursor of an epoch no log of ours has


@pytest.fixture(scope="module")
def small(start_herald: HeraldFactory) -> Herald:
    return start_herald(history_per_topic=KEPT)


async def evict(client: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    """Publish twice the history to FEED; return the cursor from before and
    the events still retained, oldest first."""
    before = await head(client)
    events = [await publish(client, FEED, n) for n in range(2 * KEPT)]
    return before, events[-KEPT:]


def last_evicted(retained: list[dict[str, Any]]) -> str:
    """The cursor delivery resumes from: just before the oldest retained."""
    epoch, oldest = retained[0]["id"].rsplit("-", 1)
    return f"{epoch}-{int(oldest) - 1}"


async def test_sse_gap_is_a_herald_gap_event_with_its_own_id(small: Herald) -> None:
    async with http(small) as client:
        before, retained = await evict(client)
        async with sse(client, FEED, cursor=before) as stream:
            gap = await stream.next()
            resumed = last_evicted(retained)
            assert gap.event == "herald.gap"
            assert gap.id == resumed
            notice = json.loads(gap.data)
            assert notice == {
                "type": "herald.gap",
                "cursor": before,
                "resumed": resumed,
            }

            ids = [(await stream.next()).id for _ in retained]
            assert ids == [e["id"] for e in retained]
            live = await publish(client, FEED, "live")
            assert (await stream.next()).id == live["id"]


@pytest.mark.parametrize("how", ["query", "op"])
async def test_websocket_gap_is_a_gap_frame(small: Herald, how: str) -> None:
    async with http(small) as client:
        before, retained = await evict(client)
        if how == "query":
            opened = websocket(small, FEED, cursor=before)
        else:
            opened = websocket(small)
        async with opened as ws:
            if how == "op":
                op = {"op": "subscribe", "topics": [FEED], "cursor": before, "ref": 1}
                assert (await call(ws, op))[0] == {"op": "ack", "ref": 1}
            gap = await recv(ws)
            resumed = last_evicted(retained)
            assert gap == {"op": "gap", "cursor": before, "resumed": resumed}

            ids = [(await recv_event(ws))["id"] for _ in retained]
            assert ids == [e["id"] for e in retained]
            live = await publish(client, FEED, "live")
            assert (await recv_event(ws))["id"] == live["id"]


async def poll(
    client: httpx.AsyncClient, cursor: str, topic: str = FEED
) -> dict[str, Any]:
    params = {"topic": topic, "cursor": cursor, "timeout": 0}
    response = await client.get("/v1/poll", params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_poll_gap_is_flagged_in_the_answer(small: Herald) -> None:
    async with http(small) as client:
        before, retained = await evict(client)
        answer = await poll(client, before)
        assert answer["gap"] is True
        assert [e["id"] for e in answer["events"]] == [e["id"] for e in retained]
        assert answer["cursor"] == retained[-1]["id"]

        again = await poll(client, answer["cursor"])
        assert again == {"events": [], "cursor": answer["cursor"], "gap": False}


async def test_cursor_still_retained_gets_no_gap(small: Herald) -> None:
    async with http(small) as client:
        _, retained = await evict(client)
        answer = await poll(client, retained[0]["id"])
        assert answer["gap"] is False
        assert [e["id"] for e in answer["events"]] == [e["id"] for e in retained[1:]]


async def test_foreign_epoch_gets_a_gap_on_every_transport(small: Herald) -> None:
    async with http(small) as client:
        _, retained = await evict(client)
        resumed = last_evicted(retained)
        wanted = [e["id"] for e in retained]

        answer = await poll(client, FOREIGN)
        assert answer["gap"] is True
        assert [e["id"] for e in answer["events"]] == wanted

        async with sse(client, FEED, cursor=FOREIGN) as stream:
            gap = await stream.next()
            assert (gap.event, gap.id) == ("herald.gap", resumed)
            assert json.loads(gap.data)["cursor"] == FOREIGN
            assert [(await stream.next()).id for _ in wanted] == wanted

        async with websocket(small, FEED, cursor=FOREIGN) as ws:
            gap = await recv(ws)
            assert gap == {"op": "gap", "cursor": FOREIGN, "resumed": resumed}
            assert [(await recv_event(ws))["id"] for _ in wanted] == wanted


async def test_topic_evicted_behind_older_topics_is_never_a_silent_gap(
    start_herald: HeraldFactory,
) -> None:
    """Another topic keeps the log's first event old while this topic's own
    oldest events are evicted; an instance resuming from before them must
    either deliver them all or say that it cannot."""
    stream = "T" + uuid.uuid4().hex[:12]
    first = start_herald(stream=stream, history_per_topic=KEPT)
    async with http(first) as client:
        kept = await publish(client, "gap.other", "keeps the log's first event")
        events = [await publish(client, "gap.busy", n) for n in range(2 * KEPT)]

    second = start_herald(stream=stream, history_per_topic=KEPT)
    for name, server in (("first", first), ("second", second)):
        async with http(server) as client:
            answer = await poll(client, kept["id"], topic="gap.busy")
            got = [e["id"] for e in answer["events"]]
            assert answer["gap"] or got == [e["id"] for e in events], (
                f"{name} instance: events {got} of {[e['id'] for e in events]}, no gap"
            )
