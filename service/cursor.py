"""Cursors: opaque, URL-safe positions in the event log, tagged with its epoch.

A cursor reads `<epoch>-<seq>`: the epoch names one incarnation of the log
(a reset log gets a new one) and `seq` is the stream sequence of the last
event before the position, so the cursor of an event is its id.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidInput

_CURSOR = re.compile(r"([0-9a-z]{1,16})-([0-9]{1,19})")


class Cursor(NamedTuple):
    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"

    @classmethod
    def parse(cls, text: str, field: str = "cursor") -> Cursor:
        """Parse a client-supplied cursor or raise InvalidInput naming `field`."""
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise InvalidInput(field, f"{text[:40]!r} is not a Herald cursor")
        return cls(match.group(1), int(match.group(2)))


def make_epoch(created_ns: int) -> str:
    """Epoch text from the log's creation time: base 36 of its microseconds."""
    value = created_ns // 1000
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out or "0"
