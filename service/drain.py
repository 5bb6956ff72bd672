"""Draining on SIGTERM: end every stream cleanly, then let Granian stop.

Granian stops a worker on SIGTERM but waits for open connections, and an
SSE stream or WebSocket never ends by itself. So each worker takes SIGTERM
over: it turns unready, ends every subscription (SSE with a last complete
event and a jittered `retry:`, WebSocket with 1001, polls answered now),
waits for the connections to go or the grace period to pass, and then
raises SIGINT, which Granian still handles, to finish the shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from .errors import EndReason
from .runtime import Runtime

log = logging.getLogger("herald.drain")

# The event loop keeps only weak references to tasks: hold the drain's here.
_tasks: set[asyncio.Task[None]] = set()


def install(rt: Runtime) -> None:
    """Take SIGTERM over in this worker's event loop."""
    loop = asyncio.get_running_loop()

    def on_sigterm() -> None:
        if not rt.draining:
            rt.draining = True
            task = loop.create_task(drain(rt))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):
        log.warning("cannot take SIGTERM over: streams will not drain on stop")


async def drain(rt: Runtime) -> None:
    """End all streams, wait for their connections to close, then stop."""
    hub = rt.hub
    grace = rt.settings.drain_seconds
    log.info("draining", extra={"connections": len(hub.connections), "grace_s": grace})
    hub.end_all(EndReason.DRAIN)
    try:
        async with asyncio.timeout(grace):
            await hub.wait_idle()
    except TimeoutError:
        log.warning(
            "drain grace period over, closing the rest",
            extra={"connections": len(hub.connections)},
        )
    log.info("drained")
    os.kill(os.getpid(), signal.SIGINT)
