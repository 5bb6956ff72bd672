"""Herald's own Locust options: topics, rates, sessions and the user mix.

Each option is also a LOCUST_HERALD_* environment variable and a field of
the web UI's custom parameters.
"""

from __future__ import annotations

import random
from typing import Any

WEIGHTS = {
    "sse": "SseSubscriber",
    "ws": "WsSubscriber",
    "poll": "PollSubscriber",
    "publish": "Publisher",
    "batch": "BatchPublisher",
}


def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("Herald", "What the Herald users do")
    arg = group.add_argument
    arg(
        "--herald-topics",
        type=int,
        default=10,
        env_var="LOCUST_HERALD_TOPICS",
        help="how many topics publishers spread events over (10)",
    )
    arg(
        "--herald-prefix",
        default="lt",
        env_var="LOCUST_HERALD_PREFIX",
        help="first token of every topic: topics are <prefix>.<i> (lt)",
    )
    arg(
        "--herald-pattern",
        choices=["one", "all"],
        default="one",
        env_var="LOCUST_HERALD_PATTERN",
        help="subscribers take one random topic, or all of them as <prefix>.> (one)",
    )
    arg(
        "--herald-rate",
        type=float,
        default=1.0,
        env_var="LOCUST_HERALD_RATE",
        help="publish requests per second per publisher user; 0: back to back (1)",
    )
    arg(
        "--herald-batch",
        type=int,
        default=10,
        env_var="LOCUST_HERALD_BATCH",
        help="events per request of a BatchPublisher (10)",
    )
    arg(
        "--herald-max-events",
        type=int,
        default=100_000,
        env_var="LOCUST_HERALD_MAX_EVENTS",
        help="a publisher user stops after publishing this many events (100000)",
    )
    arg(
        "--herald-session",
        type=float,
        default=0.0,
        env_var="LOCUST_HERALD_SESSION",
        help="mean seconds a subscriber stays connected before it reconnects "
        "and resumes from its cursor; 0: until the server ends the stream (0)",
    )
    arg(
        "--herald-poll-timeout",
        type=int,
        default=20,
        env_var="LOCUST_HERALD_POLL_TIMEOUT",
        help="the timeout a long poll asks for, 0 to 55 seconds (20)",
    )
    arg(
        "--herald-weights",
        default="",
        env_var="LOCUST_HERALD_WEIGHTS",
        help="user mix as sse=3,ws=3,poll=1,publish=1,batch=1 (those defaults)",
    )
    arg(
        "--herald-max-seconds",
        type=float,
        default=1800.0,
        env_var="LOCUST_HERALD_MAX_SECONDS",
        help="stop the whole test after this long, whatever else is set (1800)",
    )


def parse_weights(text: str) -> dict[str, int]:
    """`sse=3,ws=1` as {"SseSubscriber": 3, "WsSubscriber": 1}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in WEIGHTS or not value.isdigit():
            raise ValueError(
                f"--herald-weights: {part!r} is not NAME=N with NAME one of "
                + ", ".join(WEIGHTS)
            )
        out[WEIGHTS[name]] = int(value)
    return out


def topics(options: Any) -> list[str]:
    return [f"{options.herald_prefix}.{i}" for i in range(options.herald_topics)]


def subscription_pattern(options: Any) -> str:
    """The pattern one subscriber asks for, per --herald-pattern."""
    if options.herald_pattern == "all":
        return f"{options.herald_prefix}.>"
    return random.choice(topics(options))


def session_seconds(options: Any) -> float | None:
    """How long the next session lasts, jittered; None for no limit."""
    mean: float = options.herald_session
    return mean * random.uniform(0.5, 1.5) if mean > 0 else None
