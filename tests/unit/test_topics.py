"""Topic, pattern and type names, pattern algebra and the matching trie."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from service.errors import InvalidInput
from service.topics import (
    PatternTrie,
    check_pattern,
    check_topic,
    check_type,
    covers,
    minimal_patterns,
    overlap,
    pattern_matches,
)

# Every pattern of up to three tokens over the literals `a` and `b`, and every
# topic of up to four tokens over `a`, `b` and `z`: small enough to check the
# pattern algebra exhaustively, large enough that any counterexample to it
# among longer names also shows up here.
PATTERNS = [
    ".".join(p)
    for n in (1, 2, 3)
    for p in itertools.product("ab*>", repeat=n)
    if ">" not in p[:-1]
]
TOPICS = [".".join(t) for n in (1, 2, 3, 4) for t in itertools.product("abz", repeat=n)]


def oracle(pattern: str) -> re.Pattern[str]:
    """A regular expression for `pattern`, written independently of topics.py."""
    parts = []
    for token in pattern.split("."):
        if token == "*":
            parts.append(r"[^.]+")
        elif token == ">":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(token))
    return re.compile(r"\.".join(parts))


MATCHED = {p: frozenset(t for t in TOPICS if oracle(p).fullmatch(t)) for p in PATTERNS}


@pytest.mark.parametrize(
    "topic",
    ["a", "orders.eu.1042", "A-b_c.9", ".".join(["t"] * 16), "x" * 255],
)
def test_valid_topics(topic: str) -> None:
    assert check_topic(topic) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "",
        ".",
        "a.",
        ".a",
        "a..b",
        "a b",
        "a/b",
        "é",
        "a.*",
        "a.>",
        ">",
        ".".join(["t"] * 17),
        "x" * 256,
    ],
)
def test_invalid_topics(topic: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_topic(topic, "[3].topic")
    assert info.value.field == "[3].topic"
    assert info.value.status == 400
    assert str(info.value).startswith("[3].topic: ")


def test_topic_field_defaults_to_topic() -> None:
    with pytest.raises(InvalidInput) as info:
        check_topic("a..b")
    assert info.value.field == "topic"


@pytest.mark.parametrize(
    "pattern", ["a", "*", ">", "a.*", "a.>", "*.*.c", "a.*.>", "orders.*.1042"]
)
def test_valid_patterns(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    "pattern", ["", "a.>.b", ">.a", "a.**", "a*", "a.>>", "a..*", "a.#", "x" * 256]
)
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_pattern(pattern, "topics[1]")
    assert info.value.field == "topics[1]"


@pytest.mark.parametrize(
    "type_", ["message", "a", "order.created", "A_b-9.x", "t" * 64]
)
def test_valid_types(type_: str) -> None:
    assert check_type(type_) == type_


@pytest.mark.parametrize(
    "type_", ["", "t" * 65, "a b", "a/b", "é", "herald.gap", "herald.x"]
)
def test_invalid_types(type_: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_type(type_)
    assert info.value.field == "type"


def test_reserved_prefix_is_named() -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        check_type("herald.gap", "[0].type")
    assert check_type("heraldic") == "heraldic"


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.b.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a", False),
        ("a.*", "a.b.c", False),
        ("a.>", "a", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c", True),
        (">", "a", True),
        ("*.b.>", "x.b.c.d", True),
        ("*.b.>", "x.c.c.d", False),
    ],
)
def test_pattern_matches(pattern: str, topic: str, expected: bool) -> None:
    assert pattern_matches(pattern, topic) is expected


def test_pattern_matches_agrees_with_oracle() -> None:
    for p in PATTERNS:
        for t in TOPICS:
            assert pattern_matches(p, t) == (t in MATCHED[p]), (p, t)


@pytest.mark.parametrize(
    ("general", "specific", "expected"),
    [
        ("a.>", "a.b.c", True),
        ("a.>", "a.*", True),
        ("a.>", "a.>", True),
        ("a.>", "a", False),
        ("a.*", "a.>", False),
        ("*.b", "a.b", True),
        ("a.b", "*.b", False),
        (">", "a.>", True),
        ("a.*.c", "a.b.c", True),
    ],
)
def test_covers(general: str, specific: str, expected: bool) -> None:
    assert covers(general, specific) is expected


def test_covers_and_overlap_agree_with_matched_sets() -> None:
    for a in PATTERNS:
        for b in PATTERNS:
            assert covers(a, b) == (MATCHED[b] <= MATCHED[a]), (a, b)
            assert overlap(a, b) == bool(MATCHED[a] & MATCHED[b]), (a, b)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.*.c", "a.b.*", True),
        ("a.b", "a.c", False),
        ("a.>", "a", False),
        ("a.>", "*.b.c", True),
        ("a.*", "a.b.c", False),
        (">", "x", True),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["a.b", "a.b"], ["a.b"]),
        (["a.b", "a.>", "c", "a.*"], ["a.>", "c"]),
        (["a.*.c", "a.b.*"], ["a.*.c", "a.b.*"]),
        (["x", "*", "y.z"], ["*", "y.z"]),
        ([], []),
    ],
)
def test_minimal_patterns(given: list[str], expected: list[str]) -> None:
    assert minimal_patterns(given) == expected


def test_minimal_patterns_properties() -> None:
    rng = random.Random(1042)
    for _ in range(300):
        given = rng.choices(PATTERNS, k=rng.randint(1, 6))
        kept = minimal_patterns(given)

        assert len(set(kept)) == len(kept)
        assert kept == [p for p in dict.fromkeys(given) if p in kept]
        for p in given:
            assert any(covers(k, p) for k in kept), (given, kept, p)
        for a, b in itertools.permutations(kept, 2):
            assert not covers(a, b), (given, kept)


def test_trie_matches_star_and_rest() -> None:
    trie: PatternTrie[str] = PatternTrie()
    for pattern in ["a.b", "a.*", "a.>", "*.b", ">", "a.b.c"]:
        trie.add(pattern, pattern)

    assert sorted(trie.match("a.b")) == sorted([">", "*.b", "a.*", "a.>", "a.b"])
    assert sorted(trie.match("a")) == [">"]
    assert sorted(trie.match("a.b.c")) == sorted([">", "a.>", "a.b.c"])
    assert sorted(trie.match("x.y")) == [">"]


def test_trie_agrees_with_matched_sets() -> None:
    trie: PatternTrie[str] = PatternTrie()
    for p in PATTERNS:
        trie.add(p, p)
    for t in TOPICS:
        assert sorted(trie.match(t)) == sorted(p for p in PATTERNS if t in MATCHED[p])


def test_trie_value_under_several_patterns() -> None:
    trie: PatternTrie[str] = PatternTrie()
    trie.add("a.*", "sub")
    trie.add("a.b", "sub")
    trie.add("a.b", "other")
    trie.add("a.b", "sub")

    assert sorted(trie.match("a.b")) == ["other", "sub", "sub"]
    trie.remove("a.b", "sub")
    assert sorted(trie.match("a.b")) == ["other", "sub"]
    trie.remove("a.*", "sub")
    assert list(trie.match("a.b")) == ["other"]


def test_trie_remove_prunes_empty_nodes() -> None:
    trie: PatternTrie[int] = PatternTrie()
    trie.add("a.b.c.d", 1)
    trie.add("a.b", 2)
    trie.add("a.>", 3)

    trie.remove("a.b.c.d", 1)
    assert list(trie.match("a.b.c.d")) == [3]
    a = trie._root.children["a"]
    assert a.children["b"].children == {}

    trie.remove("a.b", 2)
    assert list(a.children) == [">"]
    trie.remove("a.>", 3)
    assert not trie
    assert trie._root.children == {}


def test_trie_remove_of_absent_entries_is_harmless() -> None:
    trie: PatternTrie[int] = PatternTrie()
    trie.add("a.b", 1)
    trie.remove("a.b.c", 1)
    trie.remove("x", 1)
    trie.remove("a.b", 2)
    trie.remove("a", 1)
    assert list(trie.match("a.b")) == [1]


def test_trie_empties_after_every_pattern_is_removed() -> None:
    trie: PatternTrie[str] = PatternTrie()
    assert not trie
    order = PATTERNS[:]
    for p in order:
        trie.add(p, p)
        trie.add(p, "shared")
    random.Random(7).shuffle(order)
    for p in order:
        trie.remove(p, p)
        trie.remove(p, "shared")
    assert not trie
    assert all(not list(trie.match(t)) for t in TOPICS)
