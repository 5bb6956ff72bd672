"""Clients that drive a running Herald: publishing, metrics, and waiting.

Every wait here is for a condition, checked every few milliseconds until a
deadline; nothing sleeps in place of a condition.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import httpx
import websockets.asyncio.client

_SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? ([0-9.eE+-]+)$")


def client(**kwargs: object) -> httpx.AsyncClient:
    """An HTTP client for loopback servers only: no proxy from the environment."""
    return httpx.AsyncClient(trust_env=False, timeout=30, **kwargs)  # type: ignore[arg-type]


def ws_connect(url: str) -> websockets.asyncio.client.connect:
    """A WebSocket client for loopback servers only, quick to close."""
    return websockets.asyncio.client.connect(
        url, proxy=None, close_timeout=1, open_timeout=10
    )


def unique_topic(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float, what: str
) -> float:
    """Check every 10 ms until `check()` is true; return the seconds it took."""
    start = time.monotonic()
    deadline = start + within
    for _ in range(int(within * 100) + 1):
        if await check():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {within} s: {what}")


async def metrics(http: httpx.AsyncClient, base: str) -> dict[str, float]:
    """The samples of /metrics, keyed `name` or `name{labels}`."""
    response = await http.get(base + "/metrics")
    response.raise_for_status()
    out: dict[str, float] = {}
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            out[f"{name}{{{labels}}}" if labels else name] = float(value)
    return out


def connections(samples: dict[str, float], transport: str) -> float:
    return samples.get(f'herald_connections{{transport="{transport}"}}', 0.0)


def subscriptions(samples: dict[str, float]) -> float:
    return samples.get("herald_subscriptions", 0.0)


async def head(http: httpx.AsyncClient, base: str) -> str:
    """The cursor just after the newest event."""
    response = await http.get(base + "/v1/cursor")
    response.raise_for_status()
    cursor: str = response.json()["cursor"]
    return cursor


async def publish(
    http: httpx.AsyncClient, base: str, topic: str, data: object = None
) -> str:
    """Publish one event and return its id."""
    response = await http.post(f"{base}/v1/topics/{topic}/events", json={"data": data})
    assert response.status_code == 201, response.text
    event_id: str = response.json()["id"]
    return event_id


async def publish_until(
    bases: Sequence[str],
    topic: str,
    stop: asyncio.Event,
    interval: float = 0.003,
    max_events: int = 5000,
    max_seconds: float = 60.0,
) -> list[str]:
    """Publish every `interval` seconds, round-robin over `bases`, until `stop`.

    Returns the ids from the publish answers, in publish order.
    """
    ids: list[str] = []
    deadline = time.monotonic() + max_seconds
    async with client() as http:
        while not stop.is_set() and len(ids) < max_events:
            assert time.monotonic() < deadline, "publisher ran past its deadline"
            base = bases[len(ids) % len(bases)]
            ids.append(await publish(http, base, topic, len(ids)))
            await asyncio.sleep(interval)
    return ids
