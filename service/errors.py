"""One exception root for Herald, and the close codes every transport shares."""

from __future__ import annotations

import enum


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""


class InvalidInput(HeraldError):
    """A client sent something the API refuses; `field` names what was wrong."""

    def __init__(self, field: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail
        self.status = status


class TooLarge(InvalidInput):
    """A body, event or batch over its limit (HTTP 413, WebSocket 1009)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail, status=413)


class BrokerUnavailable(HeraldError):
    """The broker cannot take or serve events right now; retrying later may work."""


class PublishUnconfirmed(BrokerUnavailable):
    """Events went to the broker but were not acknowledged in time, so they may
    be stored: only a retry with the same Idempotency-Key is safe. The message
    says so, for every transport to pass on as it is."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes (RFC 6455 section 7.4.1) that Herald sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    MESSAGE_TOO_BIG = 1009
    SERVER_ERROR = 1011
    TRY_AGAIN_LATER = 1013


class EndReason(enum.Enum):
    """Why a subscription ended; each transport maps it onto its own wire."""

    CLIENT_GONE = "client gone"
    SLOW = "subscriber too slow"
    DRAIN = "server draining"
    FULL = "instance full"

    @property
    def close_code(self) -> CloseCode:
        return _CLOSE_CODES[self]


_CLOSE_CODES = {
    EndReason.CLIENT_GONE: CloseCode.NORMAL,
    EndReason.SLOW: CloseCode.TRY_AGAIN_LATER,
    EndReason.DRAIN: CloseCode.GOING_AWAY,
    EndReason.FULL: CloseCode.TRY_AGAIN_LATER,
}
