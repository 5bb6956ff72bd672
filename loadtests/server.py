"""A `herald serve` child for the bench: embedded default, a free loopback port.

The bench stops it by its own PID (SIGTERM, then SIGKILL after a grace
period) and removes its private data dir; it never signals anything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from proctree import ProcessTree

from service.lifeline import end_with_parent

ROOT = Path(__file__).resolve().parent.parent
# Never through a proxy: the bench talks to loopback only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class HeraldServer:
    """One Herald with `workers` Granian workers and its private nats-server."""

    def __init__(self, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env or {}
        self._dir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        self.log = self._dir / "herald.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tree(self) -> ProcessTree:
        assert self.proc is not None
        return ProcessTree(self.proc.pid)

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "HERALD_LOG_LEVEL": "warning",
            "HERALD_DRAIN_SECONDS": "2",
            **self._env,
        }
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--data-dir",
                    str(self._dir / "data"),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A Ctrl-C of the bench must not reach the server before the
                # bench has closed its clients; the bench stops it itself,
                # and if the bench is killed outright the server ends too.
                start_new_session=True,
                preexec_fn=end_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited: {self.log.read_text()}")
            # Every worker must be up, not just the first to answer.
            if self._ready() and len(self.tree.pids()) >= self.workers + 2:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"herald not ready in {timeout} s: {self.log.read_text()}")

    def _ready(self) -> bool:
        try:
            with _OPENER.open(self.url + "/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            started = self.tree.pids()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # Stuck: end it and whatever it started, each by its PID.
                for pid in reversed(started):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> HeraldServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
