"""Bad input end to end: every refusal is a problem+json naming the field, never
a 500, and a subscriber connected all along sees nothing it should not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection

from tests.conftest import Herald

from .clients import (
    assert_problem,
    call,
    fresh_topic,
    http,
    publish,
    recv_event,
    websocket,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEVENTEEN = ".".join(["t"] * 17)
LONG = "a" * 256
CURSOR = "abc-1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watcher(herald: Herald) -> AsyncIterator[ClientConnection]:
    """A WebSocket subscribed to every topic for the whole module."""
    async with websocket(herald, ">") as ws:
        yield ws


def publish_to(topic: str, body: bytes = b'{"data": 1}') -> dict[str, Any]:
    return {"method": "POST", "url": f"/v1/topics/{topic}/events", "content": body}


def publish_body(body: bytes) -> dict[str, Any]:
    return publish_to("bad.input", body)


def batch(body: bytes) -> dict[str, Any]:
    return {"method": "POST", "url": "/v1/events", "content": body}


def get(path: str, params: Any, **extra: Any) -> dict[str, Any]:
    return {"method": "GET", "url": path, "params": params, **extra}


BAD_TOPICS = [
    ("empty token", "a..b"),
    ("empty last token", "a.b."),
    ("empty first token", ".a"),
    ("space", "a b"),
    ("slash-free punctuation", "a:b"),
    ("non-ASCII letter", "café"),
    ("wildcard star", "a.*"),
    ("wildcard rest", "a.>"),
    ("17 tokens", SEVENTEEN),
    ("256 bytes", LONG),
    ("invalid UTF-8", "%FF"),
]

BAD_PATTERNS = [
    ("empty", ""),
    ("empty token", "a..b"),
    ("rest not last", "a.>.b"),
    ("rest first", ">.a"),
    ("star inside a token", "a.b*"),
    ("bad character", "a.b$"),
    ("17 tokens", SEVENTEEN),
    ("256 bytes", LONG),
]

BAD_TYPES: list[tuple[str, Any, int]] = [
    ("LF", "a\nb", 400),
    ("CR", "a\rb", 400),
    ("CRLF", "a\r\nb", 400),
    ("NUL", "a\x00b", 400),
    ("reserved prefix", "herald.gap", 400),
    ("reserved prefix alone", "herald.", 400),
    ("65 characters", "t" * 65, 400),
    ("empty", "", 400),
    ("space", "a b", 400),
    ("non-ASCII", "é", 400),
    ("a number", 5, 422),
    ("null", None, 422),
]


def type_body(value: Any) -> bytes:
    return httpx.Request("POST", "/", json={"data": 1, "type": value}).read()


DEEP = b'{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}"

CASES: list[tuple[str, dict[str, Any], int, str]] = [
    *((f"topic {n}", publish_to(t), 400, "topic") for n, t in BAD_TOPICS),
    *((f"type {n}", publish_body(type_body(t)), s, "type") for n, t, s in BAD_TYPES),
    ("malformed JSON", publish_body(b'{"data": '), 400, "body"),
    ("empty body", publish_body(b""), 400, "body"),
    ("invalid UTF-8", publish_body(b'{"data": "\xff\xfe"}'), 400, "body"),
    ("overlong UTF-8", publish_body(b'{"data": "\xc0\xaf"}'), 400, "body"),
    ("lone high surrogate", publish_body(b'{"data": "\\ud800"}'), 400, "body"),
    ("lone low surrogate", publish_body(b'{"data": "\\udc00x"}'), 400, "body"),
    ("reversed surrogates", publish_body(b'{"data": "\\ude00\\ud83d"}'), 400, "body"),
    ("array body", publish_body(b"[1]"), 422, "body"),
    ("nested 2000 deep", publish_body(DEEP), 400, "body"),
    (
        "batch nested 2000 deep",
        batch(b'[{"topic": "a", "data": ' + DEEP[9:]),
        400,
        "body",
    ),
    ("string body", publish_body(b'"data"'), 422, "body"),
    ("no data", publish_body(b'{"type": "x"}'), 422, "data"),
    ("unknown field", publish_body(b'{"data": 1, "colour": 2}'), 422, "colour"),
    ("NaN", publish_body(b'{"data": NaN}'), 400, "body"),
    ("number out of range", publish_body(b'{"data": 1e400}'), 422, "data"),
    ("trailing garbage", publish_body(b'{"data": 1} x'), 400, "body"),
    (
        "bad Idempotency-Key",
        {**publish_body(b'{"data": 1}'), "headers": {"Idempotency-Key": "a b"}},
        400,
        "Idempotency-Key",
    ),
    (
        "long Idempotency-Key",
        {**publish_body(b'{"data": 1}'), "headers": {"Idempotency-Key": "k" * 201}},
        400,
        "Idempotency-Key",
    ),
    ("batch object", batch(b'{"topic": "a", "data": 1}'), 422, "body"),
    ("batch empty", batch(b"[]"), 400, "body"),
    ("batch malformed", batch(b'[{"topic": "a", "data": 1},'), 400, "body"),
    ("batch invalid UTF-8", batch(b'[{"topic": "a", "data": "\xff"}]'), 400, "body"),
    ("batch surrogate", batch(b'[{"topic": "a", "data": "\\udfff"}]'), 400, "body"),
    ("batch topic type", batch(b'[{"topic": ["a"], "data": 1}]'), 422, "[0].topic"),
    ("batch no topic", batch(b'[{"data": 1}]'), 422, "topic"),
    ("batch bad topic", batch(b'[{"topic": "a..b", "data": 1}]'), 400, "[0].topic"),
    *(
        (f"{path} pattern {n}", get(path, {"topic": p}), 400, "topic")
        for path in ("/v1/sse", "/v1/poll")
        for n, p in BAD_PATTERNS
    ),
    *(
        (f"{path} {n}", get(path, params), 400, field)
        for path in ("/v1/sse", "/v1/poll")
        for n, params, field in [
            ("no topic", {}, "topic"),
            ("101 patterns", [("topic", f"t{i}") for i in range(101)], "topic"),
            ("bad cursor", {"topic": "a", "cursor": "nope"}, "cursor"),
            ("cursor no seq", {"topic": "a", "cursor": "abc-"}, "cursor"),
            ("cursor upper case", {"topic": "a", "cursor": "ABC-1"}, "cursor"),
            ("cursor negative", {"topic": "a", "cursor": "abc--1"}, "cursor"),
            ("cursor twice", [("topic", "a"), ("cursor", CURSOR)] * 2, "cursor"),
        ]
    ),
    *(
        (f"{path} query not UTF-8", get(f"{path}?topic=%FF", None), 400, "query")
        for path in ("/v1/sse", "/v1/poll")
    ),
    (
        "sse bad Last-Event-ID",
        get("/v1/sse", {"topic": "a"}, headers={"Last-Event-ID": "nope"}),
        400,
        "Last-Event-ID",
    ),
    *(
        (
            f"poll {name}={value[:9]}",
            get("/v1/poll", {"topic": "a", name: value}),
            400,
            name,
        )
        for name, values in [
            ("timeout", ["-1", "56", "1.5", "x", "", " 5", "²", "٣", "9" * 5000]),
            ("limit", ["0", "1001", "-5", "ten", "1e3", "¹", "9" * 5000]),
        ]
        for value in values
    ),
]


@pytest.mark.parametrize(
    ("request_args", "status", "field"),
    [pytest.param(args, status, field, id=name) for name, args, status, field in CASES],
)
async def test_refused_with_a_problem_naming_the_field(
    herald: Herald,
    watcher: ClientConnection,
    request_args: dict[str, Any],
    status: int,
    field: str,
) -> None:
    async with http(herald) as client:
        response = await client.request(**request_args)
        assert_problem(response, status, field)


async def test_the_server_and_the_watcher_are_unharmed(
    herald: Herald, watcher: ClientConnection
) -> None:
    async with http(herald) as client:
        for path in ("/healthz", "/readyz"):
            assert (await client.get(path)).status_code == 200
        # The first event the watcher sees since it connected is this one.
        marker = await publish(client, fresh_topic("bad.after"), "marker")
        assert (await recv_event(watcher))["id"] == marker["id"]
        answer, _ = await call(watcher, {"op": "ping", "ref": "end"})
        assert answer == {"op": "pong", "ref": "end"}
