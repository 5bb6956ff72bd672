"""`herald serve` as an operator runs it: bad settings, memory broker, embedded NATS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Herald, HeraldFactory, free_port
from tests.sse import stream

from .drive import client, head, publish, unique_topic

READY_BUDGET = 2.0


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without any HERALD_* variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return {**env, **settings}


def launch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM `proc` if it still runs; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


BAD = [
    (["--port", "70000", "--broker", "memory"], {}, "HERALD_PORT"),
    (["--port", "abc", "--broker", "memory"], {}, "HERALD_PORT"),
    (["--port", "-1", "--broker", "memory"], {}, "HERALD_PORT"),
    (["--workers", "0", "--broker", "memory"], {}, "HERALD_WORKERS"),
    (["--broker", "redis"], {}, "HERALD_BROKER"),
    (["--broker", "memory", "--workers", "2"], {}, "--broker memory"),
    (["--broker", "memory"], {"HERALD_PORT": "abc"}, "HERALD_PORT"),
    (["--broker", "memory"], {"HERALD_DRAIN_SECONDS": "-1"}, "HERALD_DRAIN_SECONDS"),
    (["--broker", "memory"], {"HERALD_LOG_LEVEL": "loud"}, "HERALD_LOG_LEVEL"),
    (["--broker", "memory"], {"HERALD_QUEUE_EVENTS": "lots"}, "HERALD_QUEUE_EVENTS"),
]


@pytest.mark.parametrize(("args", "env", "names"), BAD)
def test_invalid_setting_stops_start_up_with_one_clear_line(
    args: list[str], env: dict[str, str], names: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", *args],
        env=clean_env(HERALD_DATA_DIR=str(tmp_path), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            stop(proc)
    took = time.monotonic() - started

    lines = err.decode().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("herald: invalid setting: ")
    assert names in lines[0]
    assert out == b""
    assert took < 3.0, f"refusing took {took:.2f} s"


async def test_memory_broker_serves_publish_and_sse(
    start_herald: HeraldFactory,
) -> None:
    server = start_herald("--broker", "memory")
    topic = unique_topic("mem")
    received: list[dict[str, object]] = []
    opened = asyncio.Event()

    async def subscribe(http: httpx.AsyncClient) -> None:
        url = server.url + "/v1/sse"
        async for message in stream(http, url, params={"topic": topic}):
            received.append(json.loads(message.data))
            if len(received) == 3:
                return

    async with client() as http, client(event_hooks=_opened(opened)) as streams:
        reader = asyncio.create_task(subscribe(streams))
        async with asyncio.timeout(10):
            await opened.wait()
            ids = [await publish(http, server.url, topic, i) for i in range(3)]
            await reader
        polled = await http.get(
            server.url + "/v1/poll",
            params={
                "topic": topic,
                "cursor": await _before(http, server),
                "timeout": 0,
            },
        )

    assert [e["id"] for e in received] == ids
    assert [e["data"] for e in received] == [0, 1, 2]
    assert [e["id"] for e in polled.json()["events"]] == ids


def _opened(flag: asyncio.Event) -> dict[str, list[object]]:
    """httpx hooks that set `flag` once a response's headers are in."""

    async def on_response(response: httpx.Response) -> None:
        flag.set()

    return {"response": [on_response]}


async def _before(http: httpx.AsyncClient, server: Herald) -> str:
    """The cursor before the first event of the memory log."""
    epoch = (await head(http, server.url)).rpartition("-")[0]
    return f"{epoch}-0"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    with httpx.Client(trust_env=False, timeout=1) as http:
        for _ in range(1000):
            if time.monotonic() > deadline:
                break
            assert proc.poll() is None, log.read_text()
            try:
                if http.get(url + "/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise AssertionError(f"not ready within 10 s: {log.read_text()}")


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_embedded_nats_is_ready_quickly_and_goes_away_on_sigterm(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    ready_times, exit_times = [], []
    for run in range(3):
        port = free_port()
        log = tmp_path / f"herald-{run}.log"
        started = time.monotonic()
        proc = launch(
            ["--port", str(port), "--data-dir", str(data_dir)], clean_env(), log
        )
        nats_pid = None
        try:
            _wait_ready(f"http://127.0.0.1:{port}", proc, log)
            ready_times.append(time.monotonic() - started)

            [ports_file] = (data_dir / "ports").glob("nats-server_*.ports")
            nats_pid = int(ports_file.stem.rpartition("_")[2])
            nats_url = json.loads(ports_file.read_text())["nats"][0]
            assert _alive(nats_pid) and _parent(nats_pid) == proc.pid

            listening = [ln for ln in log.read_text().splitlines() if "listening" in ln]
            assert len(listening) == 1, log.read_text()
            line = listening[0]
            assert f"http://127.0.0.1:{port}" in line
            assert "broker=nats" in line and f"nats={nats_url} (private)" in line

            signalled = time.monotonic()
            code = stop(proc)
            exit_times.append(time.monotonic() - signalled)
            assert code == 0, log.read_text()
            assert not _alive(nats_pid), "the private nats-server outlived Herald"
        finally:
            stop(proc)
            if nats_pid is not None and _alive(nats_pid):
                os.kill(nats_pid, signal.SIGKILL)  # ours: started by our Herald

    print(
        "\nembedded launch to ready: "
        + ", ".join(f"{t:.2f} s" for t in ready_times)
        + "; SIGTERM to exit: "
        + ", ".join(f"{1000 * t:.0f} ms" for t in exit_times)
    )
    assert all(t < READY_BUDGET for t in ready_times), ready_times
