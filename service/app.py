"""The Litestar application: routes, the broker and hub of this worker, lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from . import __version__, drain, lifeline
from . import logging as herald_logging
from .api import health, problems, publish
from .broker import Broker
from .broker.memory import MemoryBroker
from .broker.nats import NatsBroker, redact
from .hub import Hub
from .runtime import Runtime
from .settings import Settings, load
from .transports import longpoll, sse, websocket
from .transports.asgi import Receive, Scope, Send

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


Transport = Callable[[Runtime, Scope, Receive, Send], Awaitable[None]]


class Front:
    """The ASGI entry: the subscribe paths go straight to their transports,
    everything else, and the lifespan, to Litestar.

    Streams carry the per-event path, so they skip the framework's
    middleware, which would otherwise wrap every `send` of every event.
    """

    def __init__(self, app: Litestar, rt: Runtime) -> None:
        self.app = app
        self.rt = rt
        self._streams: dict[str, Transport] = {
            "/v1/sse": sse.serve,
            "/v1/ws": websocket.serve,
            "/v1/poll": longpoll.serve,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serve = self._streams.get(scope.get("path", ""))
        if serve is None or scope["type"] == "lifespan":
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        try:
            await serve(self.rt, scope, receive, send)
        except Exception:
            log.exception("stream failed", extra={"path": scope.get("path")})


def _tune_gc() -> None:
    """Keep the cyclic collector off the per-event path.

    Objects alive once the worker is up are frozen out of every later
    collection, and young collections run every 20,000 allocations instead
    of 700: deliveries allocate short-lived containers that reference
    counting frees anyway, and each full collection walks every object of
    every connection, which shows as a tail-latency spike.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def create_app(settings: Settings | None = None) -> Front:
    """Build the app; Granian calls this in each worker (`--factory`)."""
    # A worker outliving `herald serve` would hold the port with no one to
    # replace it: it drains and exits instead.
    lifeline.end_with_parent()
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
        _tune_gc()
        rt.started = True
        where = redact(settings.nats_url) if settings.broker == "nats" else "memory"
        log.debug("worker ready", extra={"broker": where, "epoch": broker.epoch})
        try:
            yield
        finally:
            await hub.stop()
            await broker.close()

    app = Litestar(
        route_handlers=[*publish.routes(rt), *health.routes(rt)],
        lifespan=[lifespan],
        plugins=[problems.plugin()],
        exception_handlers={Exception: problems.internal_error},
        openapi_config=OpenAPIConfig(
            title="Herald", version=__version__, path="/schema"
        ),
    )
    return Front(app, rt)
