"""What the load tools read and write on the wire, shared by Locust and the bench.

Every event a load tool publishes carries a `Stamp` in its data: the
publisher's wall-clock send time and its place in the publisher's chain,
so that a subscriber can compute the delivery latency and spot lost,
duplicated and reordered events.
"""

from __future__ import annotations

import msgspec


class Stamp(msgspec.Struct):
    """The data of a load-test event: send time, chain and number in it."""

    t: float
    n: int = 0
    p: str = ""


class Delivered(msgspec.Struct):
    """An event as subscribers get it; `data` is decoded on demand."""

    id: str
    topic: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class Frame(msgspec.Struct):
    """A WebSocket frame from the server: an event, a gap, a ping..."""

    op: str
    id: str = ""
    topic: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class PollAnswer(msgspec.Struct):
    """The body of `GET /v1/poll`."""

    events: list[Delivered]
    cursor: str
    gap: bool = False


decode_event = msgspec.json.Decoder(Delivered).decode
decode_frame = msgspec.json.Decoder(Frame).decode
decode_poll = msgspec.json.Decoder(PollAnswer).decode
_decode_stamp = msgspec.json.Decoder(Stamp).decode
encode = msgspec.json.Encoder().encode


def stamp_of(data: msgspec.Raw) -> Stamp | None:
    """The stamp in an event's data, or None for an event no load tool sent."""
    try:
        return _decode_stamp(data)
    except msgspec.DecodeError:
        return None


def seq_of(event_id: str) -> int:
    """The log position in an event id (`<epoch>-<seq>`)."""
    return int(event_id.rpartition("-")[2])


class SseReader:
    """Split an SSE byte stream into (type, id, data) events.

    Comments (`: ping`) and `retry:` lines are dropped; only dispatched
    events, those with at least one data line, come out.
    """

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[tuple[str, str, bytes]]:
        # The checks before copying matter: a bench subscriber feeds every
        # event through here, and Herald sends neither CRLF nor split events.
        text = self._rest + chunk if self._rest else chunk
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
        blocks = text.split(b"\n\n")
        self._rest = blocks.pop()
        out = []
        for block in blocks:
            kind, event_id, data = "message", "", None
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data = value if data is None else data + b"\n" + value
                elif name == b"id":
                    event_id = value.decode()
                elif name == b"event":
                    kind = value.decode()
            if data is not None:
                out.append((kind, event_id, data))
        return out
