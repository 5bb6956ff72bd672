"""Herald keeps serving through crashes and refuses to share what it owns:
a killed worker or private nats-server comes back, a busy port or data dir
stops a second start with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..conftest import ROOT, Herald, HeraldFactory, free_port
from .drive import client, publish, unique_topic
from .test_cli import _wait_ready, clean_env, launch, stop


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, read from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _wait_until(check: object, within: float, what: str) -> float:
    start = time.monotonic()
    for _ in range(int(within * 50) + 1):
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {within} s: {what}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_killed_worker_is_replaced(start_herald: HeraldFactory) -> None:
    server: Herald = start_herald("--workers", "2")
    workers = [p for p in _children(server.proc.pid) if "nats-server" not in _cmd(p)]
    assert len(workers) == 2, workers

    os.kill(workers[0], signal.SIGKILL)  # a worker of the Herald we started

    def newcomers() -> list[int]:
        # A new worker: a live child we did not see before, with a command
        # line (a zombie's is empty), that is not the nats-server.
        return [
            p
            for p in _children(server.proc.pid)
            if p not in workers and _cmd(p) and "nats-server" not in _cmd(p)
        ]

    took = _wait_until(lambda: len(newcomers()) == 1, 20, "a new worker")
    [new] = newcomers()
    ready = _wait_until(lambda: _answered_by(server.url, new), 20, "the new worker")
    assert server.proc.poll() is None
    async with client() as http:
        topic = unique_topic("crash")
        assert [await publish(http, server.url, topic, i) for i in range(3)]
    print(f"\nworker replaced in {took:.2f} s, instance ready after {ready:.2f} s")


def _answered_by(url: str, pid: int) -> bool:
    """Whether one of a few /healthz answers comes from worker `pid`."""
    for _ in range(10):
        try:
            answer = httpx.get(url + "/healthz", timeout=1, trust_env=False)
        except httpx.HTTPError:
            continue
        if answer.json().get("worker") == pid:
            return True
    return False


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


async def test_a_killed_private_nats_server_is_restarted(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "herald.log"
    proc = launch(["--port", str(port), "--data-dir", str(data_dir)], clean_env(), log)
    try:
        _wait_ready(url, proc, log)
        async with client() as http:
            topic = unique_topic("nats")
            before = [await publish(http, url, topic, i) for i in range(2)]

            [ports_file] = (data_dir / "ports").glob("nats-server_*.ports")
            nats_pid = int(ports_file.stem.rpartition("_")[2])
            os.kill(nats_pid, signal.SIGKILL)  # the private server of our Herald
            _wait_until(lambda: not _ready(url), 10, "unready while NATS is gone")
            took = _wait_until(lambda: _ready(url), 20, "ready after the restart")

            after = [await publish(http, url, topic, i) for i in range(2)]
            acked = time.monotonic()
            # The live feed is recreated on reconnect, not two missed
            # heartbeats (2 s) later: the events arrive well within that.
            response = await http.get(
                url + "/v1/poll",
                params={"topic": topic, "cursor": before[1], "timeout": 5},
            )
            lag = time.monotonic() - acked
            body = response.json()
            assert not body["gap"]
            ids = [e["id"] for e in body["events"]]
            assert ids == after and lag < 1.5, (ids, after, lag)

            # And from before the outage, nothing is missing or repeated.
            response = await http.get(
                url + "/v1/poll", params={"topic": topic, "cursor": before[0]}
            )
            assert [e["id"] for e in response.json()["events"]] == [before[1], *after]
        print(f"\nprivate nats-server back in {took:.2f} s, events {lag:.2f} s late")
    finally:
        assert stop(proc) == 0, log.read_text()


def test_a_second_serve_on_a_busy_port_or_data_dir_stops(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    log = tmp_path / "first.log"
    first = launch(["--port", str(port), "--data-dir", str(data_dir)], clean_env(), log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", first, log)
        for args, words in [
            (["--port", str(port), "--data-dir", str(tmp_path / "other")], "in use"),
            (["--port", str(free_port()), "--data-dir", str(data_dir)], "in use"),
        ]:
            second = subprocess.run(
                [sys.executable, "-m", "service.cli", "serve", *args],
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=20,
                cwd=ROOT,
            )
            lines = second.stderr.strip().splitlines()
            assert second.returncode != 0 and len(lines) == 1, second.stderr
            assert words in lines[0], lines
        assert first.poll() is None
        ports = list((data_dir / "ports").glob("*.ports"))
        assert len(ports) == 1 and json.loads(ports[0].read_text())["nats"]
    finally:
        assert stop(first) == 0, log.read_text()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_and_nats_end_when_serve_is_killed(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "first.log"
    first = launch(["--port", str(port), "--data-dir", str(data_dir)], clean_env(), log)
    _wait_ready(url, first, log)
    children = _children(first.pid)
    assert len(children) == 2, [_cmd(p) for p in children]  # a worker, nats-server

    first.kill()  # SIGKILL: no chance to stop its children itself
    first.wait()
    took = _wait_until(
        lambda: not any(_alive(p) for p in children), 15, "children ended"
    )

    # The port and the data dir are free for the next serve at once.
    log = tmp_path / "second.log"
    second = launch(
        ["--port", str(port), "--data-dir", str(data_dir)], clean_env(), log
    )
    try:
        _wait_ready(url, second, log)
    finally:
        assert stop(second) == 0, log.read_text()
    print(f"\norphans gone {took:.2f} s after serve was killed")
