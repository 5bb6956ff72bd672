"""Settings: one msgspec Struct, read from HERALD_* variables and CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from .errors import HeraldError

PREFIX = "HERALD_"
# The settings that `herald serve` also takes as flags.
FLAGS = {"host", "port", "workers", "broker", "nats_url", "data_dir", "log_level"}

Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class SettingsError(HeraldError):
    """A setting is invalid; the message is one line fit for the operator."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything an operator can set; each field is also HERALD_<NAME>."""

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    workers: Positive = 1
    broker: Literal["nats", "memory"] = "nats"
    nats_url: str = ""
    data_dir: str = ".herald"
    stream: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "HERALD"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    history_age: Seconds = 3600.0
    history_per_topic: Positive = 1000
    history_bytes: Positive = 256 * 1024 * 1024
    dedup_window: Seconds = 120.0

    max_event_bytes: Positive = 64 * 1024
    max_batch: Positive = 1000
    max_batch_bytes: Positive = 8 * 1024 * 1024
    max_connections: Positive = 50_000
    queue_events: Positive = 10_000
    queue_bytes: Positive = 1024 * 1024
    max_topics: Positive = 100

    ping_interval: Seconds = 15.0
    retry_ms: Positive = 3000
    drain_seconds: Seconds = 10.0

    @property
    def ws_max_frame(self) -> int:
        """The largest WebSocket frame taken: one event plus its envelope."""
        return self.max_event_bytes + 4096


def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `env` (default os.environ) with non-None `overrides` on top.

    Raises SettingsError with one line naming the setting that is wrong.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        value = env.get(PREFIX + field.name.upper())
        if value is not None:
            raw[field.name] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})

    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {_name(str(exc))}") from None
    if settings.dedup_window > settings.history_age:
        # JetStream refuses a duplicate window longer than the stream's max age.
        raise SettingsError(
            "invalid setting: HERALD_DEDUP_WINDOW: "
            f"{settings.dedup_window} s is longer than HERALD_HISTORY_AGE "
            f"({settings.history_age} s)"
        )
    return settings


def unknown(env: Mapping[str, str] | None = None) -> list[str]:
    """HERALD_* variables that name no setting: likely typos, worth a warning."""
    env = os.environ if env is None else env
    known = {PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}
    return sorted(k for k in env if k.startswith(PREFIX) and k not in known)


def to_env(settings: Settings) -> dict[str, str]:
    """The settings as HERALD_* variables, to hand to worker processes."""
    out = {}
    for field in msgspec.structs.fields(Settings):
        out[PREFIX + field.name.upper()] = str(getattr(settings, field.name))
    return out


def _name(message: str) -> str:
    # msgspec says "... - at `$.max_batch`"; name the variable instead.
    text, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    field = path.rstrip("`")
    flag = f" (--{field.replace('_', '-')})" if field in FLAGS else ""
    return f"{PREFIX}{field.upper()}{flag}: {text}"
