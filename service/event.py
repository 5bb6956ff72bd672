"""Events as the hub carries them: stored once, encoded once per wire format."""

from __future__ import annotations

import datetime
import time

import msgspec

_encoder = msgspec.json.Encoder()


_second = (-1, "")


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with milliseconds.

    Formatting a date is slow next to the rest of a publish, so the text up
    to the second is kept and only the milliseconds are added each time.
    """
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        moment = datetime.datetime.fromtimestamp(whole, datetime.UTC)
        _second = (whole, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second[1]}{int((now - whole) * 1000):03d}Z"


def encode_body(topic: str, type_: str, data: bytes, time: str) -> bytes:
    """The stored form of an event: its JSON members without the id.

    `type` comes first so that readers can take it without decoding; `data`
    is already JSON (one line: msgspec escapes every control character).
    """
    return (
        b'"type":"'
        + type_.encode()
        + b'","topic":"'
        + topic.encode()
        + b'","time":"'
        + time.encode()
        + b'","data":'
        + data
    )


class Event:
    """One stored event; the wire encodings are built on first use, once."""

    __slots__ = ("_json", "_sse", "_ws", "body", "id", "seq", "topic", "type")

    def __init__(self, seq: int, topic: str, body: bytes, epoch: str) -> None:
        self.seq = seq
        self.topic = topic
        self.body = body
        self.id = f"{epoch}-{seq}"
        end = body.index(b'"', 8)
        self.type = body[8:end].decode()
        self._json: bytes | None = None
        self._sse: bytes | None = None
        self._ws: str | None = None

    @property
    def json(self) -> bytes:
        """`{"id", "type", "topic", "time", "data"}` as bytes."""
        if self._json is None:
            self._json = b'{"id":"' + self.id.encode() + b'",' + self.body + b"}"
        return self._json

    @property
    def sse(self) -> bytes:
        """One complete SSE event block, ending with its blank line."""
        if self._sse is None:
            self._sse = (
                b"id: "
                + self.id.encode()
                + b"\nevent: "
                + self.type.encode()
                + b"\ndata: "
                + self.json
                + b"\n\n"
            )
        return self._sse

    @property
    def ws(self) -> str:
        """The WebSocket text frame `{"op": "event", ...event}`."""
        if self._ws is None:
            self._ws = '{"op":"event",' + self.json[1:].decode()
        return self._ws

    def summary(self) -> bytes:
        """The stored event without its data, as publish answers it, in JSON.

        `data` is the body's last member and no member before it can hold
        `,"data":` (their characters are restricted), so a cut is enough.
        """
        head = self.body[: self.body.index(b',"data":')]
        return b'{"id":"' + self.id.encode() + b'",' + head + b"}"


def encode(value: object) -> bytes:
    """JSON of `value`, with the one shared encoder."""
    return _encoder.encode(value)
