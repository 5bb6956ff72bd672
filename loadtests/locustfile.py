"""Locust load test of Herald: subscribers on every transport and publishers.

    uv run locust -f loadtests/locustfile.py            # web UI on :8089
    uv run just loadtest http://127.0.0.1:8000 200 60s   # headless, reports

User classes (pick some by name on the command line, mix them with
--herald-weights, or select them with Locust's --tags / --exclude-tags):

    SseSubscriber   tags sse, subscribe     GET /v1/sse, resumes by Last-Event-ID
    WsSubscriber    tags ws, subscribe      GET /v1/ws, resumes by cursor
    PollSubscriber  tags poll, subscribe    GET /v1/poll back to back
    Publisher       tag publish             POST /v1/topics/{topic}/events
    BatchPublisher  tags publish, batch     POST /v1/events

Deliveries show up as request type DELIVER, one row per transport, whose
response time is the publish-to-receive latency; lost, duplicated and
reordered events and gap notices are failures of that type.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import options
from locust import events
from locust.runners import MasterRunner, WorkerRunner
from publishers import BatchPublisher, Publisher
from subscribers import PollSubscriber, SseSubscriber, WsSubscriber
from tracker import DELIVER

__all__ = [
    "BatchPublisher",
    "PollSubscriber",
    "Publisher",
    "SseSubscriber",
    "WsSubscriber",
]

log = logging.getLogger("herald.locust")


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    options.add_arguments(parser)


@events.init.add_listener
def _mix(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    weights = options.parse_weights(opts.herald_weights)
    for user_class in environment.user_classes:
        if user_class.__name__ in weights:
            user_class.weight = weights[user_class.__name__]

    # Locust's tags filter tasks; drop the users left with none (or weight
    # 0), which Locust would otherwise fail to start.
    wanted = set(opts.tags or ())
    unwanted = set(opts.exclude_tags or ())

    def runs(task: Any) -> bool:
        tags = getattr(task, "locust_tag_set", set())
        return (not wanted or bool(tags & wanted)) and not tags & unwanted

    def keep(user_class: Any) -> bool:
        if not any(runs(t) for t in user_class.tasks):
            return False
        return user_class.weight > 0 or user_class.fixed_count > 0

    kept = [u for u in environment.user_classes if keep(u)]
    if not kept:
        raise SystemExit("herald: no user class left after --tags and weights")
    environment.user_classes[:] = kept


@events.test_start.add_listener
def _deadline(environment: Any, **_: Any) -> None:
    # A hard bound on every run, web UI included, so nothing runs unattended.
    if isinstance(environment.runner, WorkerRunner):
        return
    seconds = environment.parsed_options.herald_max_seconds

    def stop() -> None:
        gevent.sleep(seconds)
        log.warning("herald: --herald-max-seconds reached, stopping")
        environment.runner.quit()

    gevent.spawn(stop)


@events.quitting.add_listener
def _summary(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.stats is None:
        return
    lines = []
    for (name, method), entry in sorted(environment.stats.entries.items()):
        if method != DELIVER or entry.num_requests == 0:
            continue
        if " " in name:
            lines.append(f"  {name}: {entry.num_failures}")
        else:
            lines.append(
                f"  {name}: {entry.num_requests} delivered, latency ms "
                f"p50 {entry.get_response_time_percentile(0.5):.0f} "
                f"p99 {entry.get_response_time_percentile(0.99):.0f} "
                f"max {entry.max_response_time:.0f}"
            )
    bad = sum(
        e.num_failures
        for (name, method), e in environment.stats.entries.items()
        if method == DELIVER
    )
    role = "master" if isinstance(environment.runner, MasterRunner) else "local"
    print(f"herald delivery summary ({role}): {bad} bad events")
    print("\n".join(lines) if lines else "  no deliveries")
