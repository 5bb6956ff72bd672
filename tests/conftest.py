"""Fixtures that run the real thing: a nats-server and Herald under Granian."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.broker.embedded import EmbeddedNats

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One nats-server with JetStream for the session, on a port it picked."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    url = server.start()
    yield url
    server.stop()


class Herald:
    """A `herald serve` subprocess on a free loopback port."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(self.port),
                *args,
            ],
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"herald not ready: {self.log.read_text()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


HeraldFactory = Callable[..., Herald]


@pytest.fixture(scope="module")
def start_herald(
    nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HeraldFactory]:
    """Start Herald servers on the session's NATS, each on a stream of its own.

    Keyword arguments become HERALD_* settings: `start_herald(workers=2)`.
    """
    servers: list[Herald] = []

    def start(*args: str, **settings: object) -> Herald:
        env = {
            "HERALD_NATS_URL": nats_url,
            "HERALD_STREAM": "T" + uuid.uuid4().hex[:12],
            "HERALD_LOG_LEVEL": "info",
        }
        env.update({f"HERALD_{k.upper()}": str(v) for k, v in settings.items()})
        log = tmp_path_factory.mktemp("herald") / "herald.log"
        server = Herald(list(args), env, log)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def herald(start_herald: HeraldFactory) -> Herald:
    """A one-worker Herald shared by the tests of a module."""
    return start_herald()
