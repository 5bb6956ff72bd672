"""The wire: msgspec structs of what clients send, decoded and checked here."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .errors import InvalidInput, TooLarge
from .event import encode, encode_body, now_rfc3339
from .topics import DEFAULT_TYPE, check_topic, check_type


class PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of `POST /v1/topics/{topic}/events`."""

    data: Any
    type: str = DEFAULT_TYPE


class BatchItem(msgspec.Struct, forbid_unknown_fields=True):
    """One element of the `POST /v1/events` array."""

    topic: str
    data: Any
    type: str = DEFAULT_TYPE


class SubscribeOp(
    msgspec.Struct, tag_field="op", tag="subscribe", forbid_unknown_fields=True
):
    topics: list[str]
    cursor: str | None = None
    ref: str | int | None = None


class UnsubscribeOp(
    msgspec.Struct, tag_field="op", tag="unsubscribe", forbid_unknown_fields=True
):
    topics: list[str]
    ref: str | int | None = None


class PublishOp(
    msgspec.Struct, tag_field="op", tag="publish", forbid_unknown_fields=True
):
    topic: str
    data: Any
    type: str = DEFAULT_TYPE
    ref: str | int | None = None


class PingOp(msgspec.Struct, tag_field="op", tag="ping", forbid_unknown_fields=True):
    ref: str | int | None = None


ClientOp = SubscribeOp | UnsubscribeOp | PublishOp | PingOp
Ref = str | int | None
Status = Literal[400, 404, 413, 422, 429, 503]

_op_decoder = msgspec.json.Decoder(ClientOp)


def decode_op(frame: str) -> ClientOp:
    """Decode a client WebSocket frame or raise InvalidInput naming the field."""
    try:
        return _op_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise InvalidInput(_field(str(exc), "frame"), str(exc), 422) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput("frame", f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("frame", "JSON nested too deeply") from None


class _RefOnly(msgspec.Struct):
    ref: str | int | None = None


_ref_decoder = msgspec.json.Decoder(_RefOnly)


def ref_of(frame: str) -> Ref:
    """The `ref` of a frame that `decode_op` refused, so the error carries it."""
    try:
        return _ref_decoder.decode(frame).ref
    except (msgspec.DecodeError, RecursionError):
        return None


def decode(raw: bytes, type_: Any, field: str = "body") -> Any:
    """Decode a JSON body into `type_` or raise InvalidInput naming the field."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise InvalidInput(_field(str(exc), field), str(exc), 422) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(field, f"not valid JSON in UTF-8: {exc}") from None
    except RecursionError:
        raise InvalidInput(field, "JSON nested too deeply") from None


def event_body(
    topic: str, type_: str, data: Any, max_bytes: int, field: str = ""
) -> bytes:
    """Check a publish and return the event's stored body.

    `data` is encoded again, so the stored JSON is one line whatever the
    client sent, and its size is measured as stored.
    """
    check_topic(topic, f"{field}topic")
    check_type(type_, f"{field}type")
    try:
        data_json = encode(data)
    except RecursionError:
        raise InvalidInput(f"{field}data", "JSON nested too deeply") from None
    except (UnicodeEncodeError, msgspec.EncodeError) as exc:
        raise InvalidInput(f"{field}data", f"cannot be encoded: {exc}") from None
    if len(data_json) > max_bytes:
        raise TooLarge(
            f"{field}data",
            f"{len(data_json)} bytes encoded, over the {max_bytes} limit",
        )
    return encode_body(topic, type_, data_json, now_rfc3339())


def _field(message: str, default: str) -> str:
    """The JSON path msgspec names in `message` (`$.type`, `$[3].topic`)."""
    _, sep, path = message.rpartition(" - at `$")
    if not sep:
        return default
    path = path.rstrip("`").lstrip(".")
    return path or default
