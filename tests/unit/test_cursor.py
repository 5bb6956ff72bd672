"""Cursors: the `<epoch>-<seq>` text clients carry, and log epochs."""

from __future__ import annotations

import time

import pytest

from service.cursor import Cursor, make_epoch
from service.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "epoch", "seq"),
    [
        ("0-0", "0", 0),
        ("hor5u1out9-42", "hor5u1out9", 42),
        ("z" * 16 + "-" + "9" * 19, "z" * 16, 10**19 - 1),
    ],
)
def test_parse_and_str_round_trip(text: str, epoch: str, seq: int) -> None:
    cursor = Cursor.parse(text)
    assert cursor == Cursor(epoch, seq)
    assert str(cursor) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "abc",
        "abc-",
        "-12",
        "ABC-1",
        "a_b-1",
        "abc--1",
        "abc-1.5",
        "abc-1-2",
        "abc-x",
        " abc-1",
        "abc-1\n",
        "z" * 17 + "-1",
        "a-" + "1" * 20,
    ],
)
def test_parse_refuses_what_is_not_a_cursor(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Cursor.parse(text, "Last-Event-ID")
    assert info.value.field == "Last-Event-ID"
    assert info.value.status == 400


def test_parse_names_cursor_and_quotes_a_bounded_prefix() -> None:
    with pytest.raises(InvalidInput) as info:
        Cursor.parse("x" * 1000)
    assert info.value.field == "cursor"
    assert len(info.value.detail) < 80


def test_cursor_is_safe_in_urls_sse_and_json() -> None:
    text = str(Cursor(make_epoch(time.time_ns()), 123))
    assert text.isascii()
    assert all(c.isalnum() or c == "-" for c in text)


@pytest.mark.parametrize(
    ("created_ns", "expected"),
    [(0, "0"), (999, "0"), (1000, "1"), (35_000, "z"), (36_000, "10")],
)
def test_make_epoch_is_base36_microseconds(created_ns: int, expected: str) -> None:
    assert make_epoch(created_ns) == expected


def test_epoch_of_a_real_clock_parses_as_a_cursor() -> None:
    epoch = make_epoch(time.time_ns())
    assert Cursor.parse(f"{epoch}-7") == Cursor(epoch, 7)
    assert make_epoch(time.time_ns() + 10**9) != epoch
