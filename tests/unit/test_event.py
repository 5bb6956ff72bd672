"""Events: the stored body and its wire encodings, each built once."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from service.event import Event, encode, encode_body, now_rfc3339

TIME = "2025-01-02T03:04:05.678Z"


def make(data: Any = None, type_: str = "message", topic: str = "a.b") -> Event:
    return Event(7, topic, encode_body(topic, type_, encode(data), TIME), "ep")


DATA = [None, 0, -1.5, "text", "line\nbreak\r\x00", ',"data":', [1, {"a": []}]]


@pytest.mark.parametrize("data", DATA)
def test_json_is_the_event_with_its_id(data: Any) -> None:
    event = make(data, "order.created", "orders.eu.1042")
    assert json.loads(event.json) == {
        "id": "ep-7",
        "type": "order.created",
        "topic": "orders.eu.1042",
        "time": TIME,
        "data": data,
    }
    assert event.id == "ep-7"
    assert event.type == "order.created"
    assert event.topic == "orders.eu.1042"


@pytest.mark.parametrize("data", DATA)
def test_sse_is_one_complete_event_block(data: Any) -> None:
    event = make(data, "order.created")
    assert event.sse.endswith(b"\n\n")
    lines = event.sse[:-2].split(b"\n")
    assert lines == [b"id: ep-7", b"event: order.created", b"data: " + event.json]
    assert b"\r" not in event.sse


@pytest.mark.parametrize("data", DATA)
def test_ws_is_the_event_with_an_op(data: Any) -> None:
    event = make(data)
    frame = json.loads(event.ws)
    assert frame == {"op": "event", **json.loads(event.json)}
    assert next(iter(frame)) == "op"


def test_encodings_are_built_once() -> None:
    event = make({"n": 1})
    assert event.json is event.json
    assert event.sse is event.sse
    assert event.ws is event.ws


def test_body_is_shared_not_copied() -> None:
    body = encode_body("a", "message", b"1", TIME)
    event = Event(1, "a", body, "ep")
    assert event.body is body


def test_summary_is_the_event_without_data() -> None:
    event = make({"big": "x" * 1000}, "kind", "t.u")
    assert json.loads(event.summary()) == {
        "id": "ep-7",
        "type": "kind",
        "topic": "t.u",
        "time": TIME,
    }


def test_summary_is_not_fooled_by_data_that_looks_like_a_member() -> None:
    event = make({"k": ',"data":1,"id":"forged"'})
    assert json.loads(event.summary())["id"] == "ep-7"
    assert "data" not in json.loads(event.summary())


def test_now_rfc3339_is_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_rfc3339())


def test_now_rfc3339_tells_the_time_across_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = 1_767_225_599  # 2025-12-31T23:59:59Z
    for offset, expected in [
        (0.0, "2025-12-31T23:59:59.000Z"),
        (0.9995, "2025-12-31T23:59:59.999Z"),
        (1.0, "2026-01-01T00:00:00.000Z"),
        (1.25, "2026-01-01T00:00:00.250Z"),
        (0.5, "2025-12-31T23:59:59.500Z"),
    ]:
        monkeypatch.setattr(time, "time", lambda o=offset: base + o)
        assert now_rfc3339() == expected
