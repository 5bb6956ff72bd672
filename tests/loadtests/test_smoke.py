"""Smoke runs of the load tools, so that they cannot rot: tiny, a few seconds.

The bench starts its own Herald; the Locust run goes against one started by
the `start_herald` fixture. Both must finish, report figures and lose nothing.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, HeraldFactory

LOADTESTS = ROOT / "loadtests"


def test_bench_smoke_reports_every_run_without_loss(tmp_path: Path) -> None:
    out = tmp_path / "bench.jsonl"
    bench = [sys.executable, str(LOADTESTS / "bench.py"), "--preset", "smoke"]
    done = _run([*bench, "--out", str(out)])
    assert done.returncode == 0, done.stderr
    runs = [json.loads(line) for line in done.stdout.splitlines()]
    assert runs == [json.loads(line) for line in out.read_text().splitlines()]

    fanouts = [r for r in runs if r["run"] == "fanout"]
    assert sorted(r["transport"] for r in fanouts) == ["poll", "sse", "ws"]
    for r in fanouts:
        assert r["connected"] == r["subscribers"]
        assert r["expected"] == r["events"] * r["subscribers"] > 0
        assert r["deliveries"] == r["expected"]
        assert (r["lost"], r["disordered"], r["gaps"]) == (0, 0, 0)
        assert r["latency_ms"]["p50"] is not None
        assert r["server_cpu_s"] > 0 and r["cpu_us_per_delivery"] > 0
        assert r["server_peak_rss_mib"] > 0

    [idle] = [r for r in runs if r["run"] == "idle"]
    assert idle["connected"] == idle["connections"]
    assert idle["rss_kib_per_connection"] is not None

    publishes = [r for r in runs if r["run"] == "publish"]
    assert {r["mode"] for r in publishes} == {"single", "batch"}
    for r in publishes:
        assert r["stored"] == r["events"] and r["errors"] == 0
        assert r["events_per_s"] > 0


def test_locust_smoke_delivers_on_every_transport(
    start_herald: HeraldFactory, tmp_path: Path
) -> None:
    herald = start_herald()
    prefix = tmp_path / "locust"
    done = _run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOADTESTS / "locustfile.py"),
            "--headless",
            "--only-summary",
            "--host",
            herald.url,
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "6s",
            "--csv",
            str(prefix),
            "--herald-weights",
            "sse=1,ws=1,poll=1,publish=1,batch=1",
            "--herald-topics",
            "3",
            "--herald-pattern",
            "all",
            "--herald-rate",
            "10",
            "--herald-session",
            "2",
            "--herald-poll-timeout",
            "2",
        ],
    )
    # Locust exits 1 when any request, delivery check included, failed.
    assert done.returncode == 0, done.stdout + done.stderr

    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    for transport in ("sse", "ws", "poll"):
        row = rows[("DELIVER", transport)]
        assert int(row["Request Count"]) > 0, transport
        assert int(row["Failure Count"]) == 0, transport
    assert int(rows[("POST", "/v1/events")]["Request Count"]) > 0
    assert int(rows[("POST", "/v1/topics/[topic]/events")]["Request Count"]) > 0
    bad = [name for (kind, name) in rows if kind == "DELIVER" and " " in name]
    assert bad == []
    assert "herald delivery summary" in done.stdout + done.stderr


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a load tool to its end; on a hang, fail with what it printed."""
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        message = f"{command[1:3]} hung: {exc.stdout!r} {exc.stderr!r}"
        raise AssertionError(message) from None
