"""Operational routes: liveness, readiness, the head cursor and metrics."""

from __future__ import annotations

import os

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from ..event import encode
from ..runtime import Runtime

_TRANSPORTS = ("sse", "ws", "poll")


def routes(rt: Runtime) -> list[HTTPRouteHandler]:
    @get("/healthz", summary="The process is alive", cache=False)
    async def healthz() -> dict[str, str | int]:
        # The worker's PID tells an operator which process of an instance
        # answered, as /metrics are per worker.
        return {"status": "ok", "worker": os.getpid()}

    @get("/readyz", summary="Ready for traffic: broker connected, not draining")
    async def readyz() -> Response[bytes]:
        if rt.draining:
            return _status(503, "draining")
        if not rt.started or not rt.broker.ready:
            return _status(503, "broker unavailable")
        return _status(200, "ready")

    @get("/v1/cursor", summary="The cursor just after the newest event")
    async def cursor() -> Response[bytes]:
        bounds = await rt.broker.bounds()
        head = max(bounds.last, rt.hub.head)
        return Response(
            encode({"cursor": f"{rt.hub.epoch}-{head}"}),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @get(
        "/metrics", summary="Prometheus metrics of this worker", media_type="text/plain"
    )
    async def metrics() -> Response[bytes]:
        hub = rt.hub
        by_transport = dict.fromkeys(_TRANSPORTS, 0)
        for conn in hub.connections:
            by_transport[conn.transport] = by_transport.get(conn.transport, 0) + 1
        lines = [
            "# HELP herald_connections Open client connections of this worker.",
            "# TYPE herald_connections gauge",
            *(
                f'herald_connections{{transport="{t}"}} {n}'
                for t, n in sorted(by_transport.items())
            ),
            "# HELP herald_subscriptions Subscriptions of this worker.",
            "# TYPE herald_subscriptions gauge",
            f"herald_subscriptions {len(hub.subscriptions)}",
            "# HELP herald_head_sequence Newest sequence this worker has seen.",
            "# TYPE herald_head_sequence gauge",
            f"herald_head_sequence {hub.head}",
            "# HELP herald_deliveries_total Live events handed to subscriptions.",
            "# TYPE herald_deliveries_total counter",
            f"herald_deliveries_total {hub.deliveries}",
            "# HELP herald_slow_disconnects_total Subscriptions ended as too slow.",
            "# TYPE herald_slow_disconnects_total counter",
            f"herald_slow_disconnects_total {hub.slow_ended}",
            "# HELP herald_broker_ready Whether the broker is connected.",
            "# TYPE herald_broker_ready gauge",
            f"herald_broker_ready {int(rt.broker.ready)}",
        ]
        return Response(
            ("\n".join(lines) + "\n").encode(),
            media_type="text/plain; version=0.0.4",
        )

    return [healthz, readyz, cursor, metrics]


def _status(code: int, status: str) -> Response[bytes]:
    return Response(
        encode({"status": status}), status_code=code, media_type="application/json"
    )
