"""Topic names, subscription patterns and the token trie that matches them."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from .errors import InvalidInput

MAX_TOPIC_BYTES = 255
MAX_TOKENS = 16
MAX_TYPE_CHARS = 64
DEFAULT_TYPE = "message"
RESERVED_TYPE_PREFIX = "herald."

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

T = TypeVar("T")


def _tokens(value: str, field: str, *, wildcards: bool) -> list[str]:
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value.encode()) > MAX_TOPIC_BYTES:
        raise InvalidInput(field, f"longer than {MAX_TOPIC_BYTES} bytes")
    tokens = value.split(".")
    if len(tokens) > MAX_TOKENS:
        raise InvalidInput(field, f"more than {MAX_TOKENS} dot-separated tokens")
    for i, token in enumerate(tokens):
        if wildcards and token == "*":
            continue
        if wildcards and token == ">" and i == len(tokens) - 1:
            continue
        if not _TOKEN.fullmatch(token):
            raise InvalidInput(
                field,
                f"token {token!r} of {value!r} must be letters, digits, '_' or '-'"
                + (" (or '*', or '>' last)" if wildcards else ""),
            )
    return tokens


# Valid names repeat (every poll of a topic checks it again): remember them.
@functools.lru_cache(maxsize=4096)
def check_topic(value: str, field: str = "topic") -> str:
    """Return `value` if it is a valid topic, else raise InvalidInput."""
    _tokens(value, field, wildcards=False)
    return value


@functools.lru_cache(maxsize=4096)
def check_pattern(value: str, field: str = "topic") -> str:
    """Return `value` if it is a valid pattern (`*` and a last `>` allowed)."""
    _tokens(value, field, wildcards=True)
    return value


def check_type(value: str, field: str = "type") -> str:
    """Return `value` if it is a valid, non-reserved event type."""
    if not _TYPE.fullmatch(value):
        raise InvalidInput(field, "must be 1 to 64 letters, digits, '_', '.' or '-'")
    if value.startswith(RESERVED_TYPE_PREFIX):
        raise InvalidInput(
            field, f"types starting with {RESERVED_TYPE_PREFIX!r} are reserved"
        )
    return value


def pattern_matches(pattern: str, topic: str) -> bool:
    """Whether `topic` matches `pattern` under NATS wildcard rules."""
    p_tokens = pattern.split(".")
    t_tokens = topic.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(t_tokens) > i
        if i >= len(t_tokens) or (p != "*" and p != t_tokens[i]):
            return False
    return len(p_tokens) == len(t_tokens)


def covers(general: str, specific: str) -> bool:
    """Whether every topic matched by `specific` is matched by `general`."""
    g_tokens = general.split(".")
    s_tokens = specific.split(".")
    for i, g in enumerate(g_tokens):
        if g == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens):
            return False
        s = s_tokens[i]
        if s == ">" or (g != "*" and (s == "*" or g != s)):
            return False
    return len(g_tokens) == len(s_tokens)


def overlap(a: str, b: str) -> bool:
    """Whether some topic is matched by both patterns."""
    a_tokens = a.split(".")
    b_tokens = b.split(".")
    for i in range(max(len(a_tokens), len(b_tokens))):
        x = a_tokens[i] if i < len(a_tokens) else None
        y = b_tokens[i] if i < len(b_tokens) else None
        if x == ">" or y == ">":
            return x is not None and y is not None
        if x is None or y is None:
            return False
        if x != "*" and y != "*" and x != y:
            return False
    return True


def minimal_patterns(patterns: Iterable[str]) -> list[str]:
    """Drop duplicates and patterns another one already covers, keeping order."""
    unique = list(dict.fromkeys(patterns))
    return [
        p
        for i, p in enumerate(unique)
        if not any(j != i and covers(q, p) and (q != p) for j, q in enumerate(unique))
    ]


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: set[T] = set()


class PatternTrie(Generic[T]):
    """Maps patterns to values; `match(topic)` walks tokens, not all patterns.

    A value may be stored under several patterns; `match` yields it once per
    pattern that matches, so callers that need uniqueness deduplicate.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()

    def add(self, pattern: str, value: T) -> None:
        node = self._root
        for token in pattern.split("."):
            node = node.children.setdefault(token, _Node())
        node.values.add(value)

    def remove(self, pattern: str, value: T) -> None:
        path = [self._root]
        for token in pattern.split("."):
            child = path[-1].children.get(token)
            if child is None:
                return
            path.append(child)
        path[-1].values.discard(value)

        # Prune empty nodes so the trie does not grow with churned topics.
        tokens = pattern.split(".")
        for depth in range(len(tokens), 0, -1):
            node = path[depth]
            if node.values or node.children:
                break
            del path[depth - 1].children[tokens[depth - 1]]

    def match(self, topic: str) -> Iterator[T]:
        yield from self._match(self._root, topic.split("."), 0)

    def _match(self, node: _Node[T], tokens: list[str], i: int) -> Iterator[T]:
        rest = node.children.get(">")
        if rest is not None and i < len(tokens):
            yield from rest.values
        if i == len(tokens):
            yield from node.values
            return
        exact = node.children.get(tokens[i])
        if exact is not None:
            yield from self._match(exact, tokens, i + 1)
        star = node.children.get("*")
        if star is not None:
            yield from self._match(star, tokens, i + 1)

    def __bool__(self) -> bool:
        return bool(self._root.children)
