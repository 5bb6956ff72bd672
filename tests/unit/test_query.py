"""Query strings read the same with and without percent-escapes."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from service.errors import InvalidInput
from service.transports.asgi import Query


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "topic=a",
        "topic=a&topic=b.c&cursor=x-1",
        "topic=a&&topic=&cursor",
        "topic=a=b&timeout=5",
        "topic=a%2Eb&cursor=x%2D1",
        "topic=a+b",
        "topic=%E2%9C%93",
    ],
)
def test_values_are_those_parse_qsl_reads(raw: str) -> None:
    query = Query({"query_string": raw.encode()})
    expected: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        expected.setdefault(key, []).append(value)
    for name in {"topic", "cursor", "timeout", "other"} | set(expected):
        assert query.all(name) == expected.get(name, [])


def test_bad_utf8_is_refused_escaped_or_not() -> None:
    for raw in (b"topic=\xff", b"topic=%FF"):
        with pytest.raises(InvalidInput) as caught:
            Query({"query_string": raw}).all("topic")
        assert caught.value.field == "query"
