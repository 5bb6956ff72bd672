"""Settings from HERALD_* variables and overrides, and their one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from service.settings import FLAGS, Settings, SettingsError, load, to_env, unknown


def test_defaults_from_an_empty_environment() -> None:
    settings = load({})
    assert settings == Settings()
    assert settings.broker == "nats"
    assert settings.history_age == 3600.0
    assert settings.history_per_topic == 1000
    assert settings.history_bytes == 256 * 1024 * 1024
    assert settings.dedup_window == 120.0
    assert settings.max_event_bytes == 64 * 1024
    assert settings.ping_interval == 15.0


def test_environment_values_are_converted() -> None:
    settings = load(
        {
            "HERALD_PORT": "9001",
            "HERALD_BROKER": "memory",
            "HERALD_HISTORY_AGE": "1.5",
            "HERALD_DEDUP_WINDOW": "0.5",
            "HERALD_HISTORY_PER_TOPIC": "3",
            "HERALD_STREAM": "T-1_x",
            "HERALD_NATS_URL": "nats://127.0.0.1:4222",
        }
    )
    assert settings.port == 9001
    assert settings.broker == "memory"
    assert settings.history_age == 1.5
    assert settings.dedup_window == 0.5
    assert settings.history_per_topic == 3
    assert settings.stream == "T-1_x"
    assert settings.nats_url == "nats://127.0.0.1:4222"


def test_overrides_win_over_the_environment_and_none_is_no_override() -> None:
    env = {"HERALD_PORT": "9001", "HERALD_WORKERS": "4"}
    settings = load(env, port=9002, workers=None)
    assert settings.port == 9002
    assert settings.workers == 4


def test_unrelated_variables_are_ignored() -> None:
    assert load({"PORT": "1", "HERALDX": "2", "HERALD_": "3"}) == Settings()


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_QUEUE_EVENTS", "17")
    assert load().queue_events == 17


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("WORKERS", "0"),
        ("BROKER", "redis"),
        ("STREAM", "has space"),
        ("STREAM", "a.b"),
        ("LOG_LEVEL", "INFO"),
        ("HISTORY_AGE", "0"),
        ("HISTORY_AGE", "-1"),
        ("HISTORY_BYTES", "lots"),
        ("DEDUP_WINDOW", "0"),
        ("MAX_EVENT_BYTES", "0"),
        ("DRAIN_SECONDS", "soon"),
    ],
)
def test_invalid_variable_is_named_in_one_line(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load({f"HERALD_{name}": value})
    message = str(info.value)
    assert f"HERALD_{name}" in message
    flag = f"--{name.lower().replace('_', '-')}"
    # Only the settings `herald serve` takes as flags are named as flags.
    assert (flag in message) == (name.lower() in FLAGS)
    assert "\n" not in message
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("override", "name"),
    [({"port": -1}, "HERALD_PORT"), ({"queue_bytes": 0}, "HERALD_QUEUE_BYTES")],
)
def test_invalid_override_is_named_too(override: dict[str, Any], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load({}, **override)


def test_to_env_round_trips() -> None:
    settings = load({}, broker="memory", history_age=300.5, port=0, stream="S1")
    env = to_env(settings)
    assert all(key.startswith("HERALD_") for key in env)
    assert load(env) == settings


def test_ws_max_frame_leaves_room_for_the_envelope() -> None:
    assert load({}, max_event_bytes=1000).ws_max_frame > 1000


def test_dedup_window_may_not_outlast_history() -> None:
    env = {"HERALD_HISTORY_AGE": "60"}
    with pytest.raises(SettingsError) as info:
        load(env)
    message = str(info.value)
    assert "HERALD_DEDUP_WINDOW" in message
    assert "HERALD_HISTORY_AGE" in message
    assert "\n" not in message
    assert load(env, dedup_window=60).dedup_window == 60


def test_unknown_variables_are_listed_for_a_warning() -> None:
    env = {"HERALD_PROT": "1", "HERALD_PORT": "1", "OTHER": "x"}
    assert unknown(env) == ["HERALD_PROT"]
