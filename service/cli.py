"""`herald serve`: start Herald on Granian, with a private NATS unless given one."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from . import __version__
from . import logging as herald_logging
from .broker.embedded import EmbeddedError, EmbeddedNats
from .broker.nats import redact
from .settings import Settings, SettingsError, load, to_env, unknown

log = logging.getLogger("herald")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="herald", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve the API (each flag is also a HERALD_* variable)",
        description="Serve Herald. Each flag is also an environment variable, "
        "HERALD_ and the flag's name: --nats-url is HERALD_NATS_URL.",
    )
    serve.add_argument("--host", help="address to listen on (127.0.0.1)")
    # Numbers are checked by Settings, so a bad one gets its one-line error.
    serve.add_argument("--port", help="port to listen on (8000)")
    serve.add_argument("--workers", help="worker processes (1)")
    serve.add_argument("--broker", help="nats or memory (nats)")
    serve.add_argument(
        "--nats-url", help="NATS server or cluster; none: start a private one"
    )
    serve.add_argument("--data-dir", help="private NATS data (.herald)")
    serve.add_argument("--log-level", help="debug, info, warning or error (info)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    herald_logging.setup("info")
    try:
        settings = load(
            host=args.host,
            port=args.port,
            workers=args.workers,
            broker=args.broker,
            nats_url=args.nats_url,
            data_dir=args.data_dir,
            log_level=args.log_level,
        )
        if settings.broker == "memory" and settings.workers != 1:
            raise SettingsError(
                "invalid setting: --broker memory runs one worker; use nats for more"
            )
    except SettingsError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    herald_logging.setup(settings.log_level)
    for name in unknown():
        log.warning("unknown setting ignored, is it a typo?", extra={"variable": name})
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; return the exit code."""
    if settings.port == 0:
        settings = _with(settings, port=_free_port(settings.host))
    problem = _cannot_listen(settings.host, settings.port)
    if problem:
        print(
            f"herald: cannot listen on {settings.host}:{settings.port}: {problem}",
            file=sys.stderr,
        )
        return 1

    embedded = None
    if settings.broker == "nats" and not settings.nats_url:
        embedded = EmbeddedNats(Path(settings.data_dir).resolve())
        try:
            url = embedded.start()
        except EmbeddedError as exc:
            print(f"herald: {exc}", file=sys.stderr)
            return 1
        settings = _with(settings, nats_url=url)
    try:
        os.environ.update(to_env(settings))
        where = "memory" if settings.broker == "memory" else redact(settings.nats_url)
        log.info(
            f"herald listening on http://{settings.host}:{settings.port}",
            extra={
                "broker": settings.broker,
                "nats": where + (" (private)" if embedded else ""),
                "workers": settings.workers,
            },
        )
        return _granian(settings)
    finally:
        if embedded is not None:
            embedded.stop()


def _granian(settings: Settings) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    quiet = settings.log_level != "debug"
    server = Granian(
        "service.app:create_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        # HTTP/1.1 only: Granian's auto-detection of HTTP/2 costs about
        # 12 KiB per connection, and without TLS no browser speaks HTTP/2.
        http=HTTPModes.http1,
        workers=settings.workers,
        loop=Loops.auto,
        log_level=LogLevels.warning if quiet else LogLevels.debug,
        workers_kill_timeout=int(settings.drain_seconds) + 5,
        backlog=2048,
        # Granian serves at most `backpressure` requests at once per worker,
        # by default backlog / workers: streams past that would hang unserved.
        # Headroom over our own limit, so that "instance full" is answered
        # by Herald instead of the connection waiting in Granian's queue.
        backpressure=settings.max_connections + 1024,
        # A worker that dies (OOM, a crash) is replaced; clients resume.
        respawn_failed_workers=True,
    )
    try:
        server.serve()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _with(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def _cannot_listen(host: str, port: int) -> str:
    """Why binding host:port fails, or "" if it works.

    Granian binds with SO_REUSEPORT, so a second Herald on a busy port would
    silently share it; a plain bind first turns that into a clear error.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"bad host: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
