"""Locust publishers: one event per request, or a batch per request.

Each publisher user numbers its events per topic in a chain of its own and
stamps each with its send time (see `wire.Stamp`). A publish that fails may
or may not have been stored, so after one the user starts a new chain:
subscribers then take its next event as a fresh start, not as a loss.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import options
from locust import FastHttpUser, constant_throughput, tag, task
from locust.exception import StopUser
from wire import encode

_JSON = {"Content-Type": "application/json"}


class _Publishing(FastHttpUser):
    abstract = True

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.topics = options.topics(opts)
        self.left: int = opts.herald_max_events
        rate = opts.herald_rate
        self._pace = constant_throughput(rate) if rate > 0 else None
        self._id = uuid.uuid4().hex[:10]
        self._generation = 0
        self._numbers: dict[str, int] = {}

    def wait_time(self) -> float:
        return 0.0 if self._pace is None else float(self._pace(self))

    @property
    def chain(self) -> str:
        return f"{self._id}.{self._generation}"

    def stamped(self, topic: str) -> dict[str, Any]:
        """The data of the next event on `topic`."""
        if self.left <= 0:
            raise StopUser
        self.left -= 1
        n = self._numbers.get(topic, 0) + 1
        self._numbers[topic] = n
        return {"t": time.time(), "n": n, "p": self.chain}

    def broke_chain(self) -> None:
        self._generation += 1
        self._numbers.clear()


class Publisher(_Publishing):
    """`POST /v1/topics/{topic}/events`, one event a request."""

    weight = 1

    @tag("publish")
    @task
    def publish(self) -> None:
        topic = random.choice(self.topics)
        body = encode({"data": self.stamped(topic)})
        with self.client.post(
            f"/v1/topics/{topic}/events",
            data=body,
            headers=_JSON,
            name="/v1/topics/[topic]/events",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}")
                self.broke_chain()


class BatchPublisher(_Publishing):
    """`POST /v1/events` with --herald-batch events over random topics."""

    weight = 1

    @tag("publish", "batch")
    @task
    def publish_batch(self) -> None:
        size = self.environment.parsed_options.herald_batch
        items = []
        for _ in range(min(size, max(self.left, 1))):
            topic = random.choice(self.topics)
            items.append({"topic": topic, "data": self.stamped(topic)})
        with self.client.post(
            "/v1/events",
            data=encode(items),
            headers=_JSON,
            name="/v1/events",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}")
                self.broke_chain()
