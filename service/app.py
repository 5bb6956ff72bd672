"""The Litestar application: routes, the broker and hub of this worker, lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, asgi
from litestar.handlers import ASGIRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.types import Receive, Scope, Send

from . import __version__, drain
from . import logging as herald_logging
from .api import health, problems, publish
from .broker import Broker
from .broker.memory import MemoryBroker
from .broker.nats import NatsBroker, redact
from .hub import Hub
from .runtime import Runtime
from .settings import Settings, load
from .transports import longpoll, sse, websocket

log = logging.getLogger("herald.app")


def make_broker(settings: Settings) -> Broker:
    if settings.broker == "memory":
        return MemoryBroker(
            max_age=settings.history_age,
            max_per_topic=settings.history_per_topic,
            max_bytes=settings.history_bytes,
            dedup_window=settings.dedup_window,
        )
    return NatsBroker(
        settings.nats_url or "nats://127.0.0.1:4222",
        stream=settings.stream,
        max_age=settings.history_age,
        max_per_topic=settings.history_per_topic,
        max_bytes=settings.history_bytes,
        dedup_window=settings.dedup_window,
        max_event_bytes=settings.max_event_bytes + 1024,
    )


def _transport(path: str, serve: Any, rt: Runtime) -> ASGIRouteHandler:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await serve(rt, scope, receive, send)

    handler.__name__ = f"subscribe_{serve.__module__.rsplit('.', 1)[-1]}"
    return asgi(path, is_mount=False)(handler)


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app; Granian calls this in each worker (`--factory`)."""
    settings = settings or load()
    herald_logging.setup(settings.log_level)
    broker = make_broker(settings)
    hub = Hub(
        broker,
        max_connections=settings.max_connections,
        queue_events=settings.queue_events,
        queue_bytes=settings.queue_bytes,
    )
    rt = Runtime(settings=settings, broker=broker, hub=hub)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await broker.start()
        await hub.start()
        hub.start_pings(settings.ping_interval)
        drain.install(rt)
        rt.started = True
        where = redact(settings.nats_url) if settings.broker == "nats" else "memory"
        log.debug("worker ready", extra={"broker": where, "epoch": broker.epoch})
        try:
            yield
        finally:
            await hub.stop()
            await broker.close()

    return Litestar(
        route_handlers=[
            *publish.routes(rt),
            *health.routes(rt),
            _transport("/v1/sse", sse.serve, rt),
            _transport("/v1/ws", websocket.serve, rt),
            _transport("/v1/poll", longpoll.serve, rt),
        ],
        lifespan=[lifespan],
        plugins=[problems.plugin()],
        exception_handlers={Exception: problems.internal_error},
        openapi_config=OpenAPIConfig(
            title="Herald", version=__version__, path="/schema"
        ),
    )
