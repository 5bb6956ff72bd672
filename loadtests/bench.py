"""Fan-out benchmark of Herald: N subscribers per transport, M events, costs.

    uv run just bench                  # moderate matrix, a few minutes on 2 cores
    uv run just bench --preset key     # 1,000 subscribers, one topic, 20 ev/s
    uv run just bench --full           # every transport, N, topic spread, rate
    uv run just bench --url http://127.0.0.1:8000 --server-pid PID

By default each run gets a fresh `herald serve` (embedded nats-server) on a
free loopback port. Each run prints one JSON line: deliveries per second,
publish-to-receive latency, loss, and the server's CPU seconds (its whole
process tree, nats-server included) and peak RSS. Idle runs give the RSS
per open connection; publish runs give REST publish throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import resource
import signal
import sys
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clients
from clients import Http, Stats, Tally, Target, publish
from proctree import ProcessTree, cpu_between, machine_busy
from server import HeraldServer

REPORTS = Path(__file__).resolve().parent / "reports"
LOOPBACK = ("127.", "::1", "localhost")
CONNECTS_AT_ONCE = 200
LIVE: list[HeraldServer] = []  # servers to stop whatever happens


@dataclass
class Plan:
    """What one invocation runs; presets fill it, flags override."""

    transports: list[str]
    subscribers: list[int]
    topics: list[str]
    rates: list[float]
    duration: float
    workers: list[int]
    idle: list[tuple[str, int]]
    publish: list[tuple[int, int, int]]  # (events, batch, concurrency)
    max_deliveries: int = 100_000
    fanout: bool = True
    reuse_server: bool = False
    concurrency: int = 8
    batch: int = 1
    poll_timeout: int = 10
    settle: float = 3.0
    pause: float = 1.0  # quiet seconds after connecting, before measuring
    idle_seconds: float = 16.0  # idle CPU window: one 15 s ping cycle


ALL = ["sse", "ws", "poll"]
PRESETS = {
    "smoke": Plan(
        transports=ALL,
        subscribers=[5],
        topics=["1"],
        rates=[50],
        duration=1.0,
        workers=[1],
        idle=[("sse+ws", 20)],
        publish=[(200, 1, 4), (200, 50, 2)],
        reuse_server=True,
        settle=2.0,
        pause=0.2,
        idle_seconds=1.0,
    ),
    "moderate": Plan(
        transports=ALL,
        subscribers=[100, 1000],
        topics=["1"],
        rates=[20, 0],
        duration=5.0,
        workers=[1],
        idle=[("sse+ws", 2000)],
        publish=[(2000, 1, 8), (20_000, 100, 4)],
    ),
    "key": Plan(
        transports=ALL,
        subscribers=[1000],
        topics=["1"],
        rates=[20],
        duration=15.0,
        workers=[1, 2],
        idle=[("sse", 10_000), ("ws", 10_000), ("sse+ws", 10_000)],
        publish=[(5000, 1, 1), (5000, 1, 8), (50_000, 100, 4)],
    ),
    "full": Plan(
        transports=ALL,
        subscribers=[100, 1000, 5000],
        topics=["1", "n/10"],
        rates=[0, 20],
        duration=10.0,
        workers=[1, 2],
        idle=[("sse", 10_000), ("ws", 10_000), ("sse+ws", 10_000)],
        publish=[(5000, 1, 1), (5000, 1, 8), (50_000, 100, 4)],
    ),
}


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentiles(values: array[float]) -> dict[str, float | None]:
    """p50, p99 and max of `values` (seconds) in milliseconds."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2)}


class Meter:
    """Server CPU and peak RSS, client CPU and wall time over one window."""

    def __init__(self, tree: ProcessTree | None) -> None:
        self.tree = tree
        self.peak_rss = 0
        self._task: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Sample the server's RSS four times a second until `close`."""

        async def sample() -> None:
            while self.tree is not None:
                self.peak_rss = max(self.peak_rss, self.tree.rss())
                await asyncio.sleep(0.25)

        self._task = asyncio.get_running_loop().create_task(sample())

    def start(self) -> None:
        self._cpu = self.tree.cpu() if self.tree else {}
        self._client = _client_cpu()
        self._machine = machine_busy()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall
        client = _client_cpu() - self._client
        machine = machine_busy() - self._machine
        out: dict[str, Any] = {"wall_s": round(wall, 3), "server_cpu_s": None}
        if self.tree is not None:
            after = self.tree.cpu()
            server = cpu_between(self._cpu, after)
            nats = {p for p, name in self.tree.names().items() if "nats" in name}
            out["server_cpu_s"] = round(server, 3)
            out["nats_cpu_s"] = round(cpu_between(self._cpu, after, nats), 3)
            machine -= server
        out["client_cpu_s"] = round(client, 3)
        # CPU that neither the bench nor the server used: other work on the
        # machine, which makes latencies worse than on a quiet one.
        out["other_cpu_s"] = round(max(0.0, machine - client), 3)
        return out

    def close(self) -> float | None:
        if self._task is not None:
            self._task.cancel()
        return round(self.peak_rss / 2**20, 1) if self.tree else None


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def head_cursor(target: Target) -> str:
    http = Http(target)
    try:
        status, body = await http.request("GET", "/v1/cursor")
    finally:
        http.close()
    if status != 200:
        raise RuntimeError(f"GET /v1/cursor answered {status}")
    cursor: str = json.loads(body)["cursor"]
    return cursor


Subscriber = Callable[[Target, str, Tally, Callable[[], None]], Awaitable[None]]


class Crowd:
    """Many subscribers of one transport, connected a few hundred at a time."""

    def __init__(self, target: Target, make: Subscriber, stats: Stats) -> None:
        self.target = target
        self.make = make
        self.stats = stats
        self.tasks: list[asyncio.Task[None]] = []
        self.connected = 0

    async def join(
        self, topics: list[str], wait: float = 20.0, total: float = 180.0
    ) -> None:
        """Connect a subscriber per topic; give up on those not up in time."""
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        loop = asyncio.get_running_loop()

        async def one(topic: str) -> None:
            async with gate:
                up = asyncio.Event()
                tally = Tally(self.stats)
                self.tasks.append(
                    loop.create_task(self.make(self.target, topic, tally, up.set))
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(up.wait(), wait)
                if up.is_set():
                    self.connected += 1

        launches = [loop.create_task(one(t)) for t in topics]
        _, late = await asyncio.wait(launches, timeout=total)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def leave(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def make_subscriber(transport: str, poll_timeout: int, start: str) -> Subscriber:
    if transport == "sse":
        return clients.sse
    if transport == "ws":
        return clients.ws
    return clients.poll(poll_timeout, start)


def topic_count(spec: str, subscribers: int) -> int:
    """`1`, `50` or `n/10` (one topic per ten subscribers)."""
    if spec.startswith("n/"):
        return max(1, subscribers // int(spec[2:]))
    return int(spec)


async def fanout(
    target: Target,
    tree: ProcessTree | None,
    plan: Plan,
    transport: str,
    n: int,
    topics_spec: str,
    rate: float,
) -> dict[str, Any]:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.{i}" for i in range(topic_count(topics_spec, n))]
    fan = n / len(topics)
    if rate > 0:
        events = max(1, round(rate * plan.duration))
    else:
        events = max(20, min(5000, round(plan.max_deliveries / fan)))
    stats = Stats()
    meter = Meter(tree)
    meter.watch()
    crowd = Crowd(
        target,
        make_subscriber(transport, plan.poll_timeout, await head_cursor(target)),
        stats,
    )
    try:
        await crowd.join([topics[i % len(topics)] for i in range(n)])
        await asyncio.sleep(plan.pause)  # let the connect burst pass first
        meter.start()
        publish_start = time.time()
        published = await publish(
            target,
            topics,
            events,
            rate,
            plan.concurrency if rate <= 0 else 4,
            plan.batch,
        )
        subscribed = [0] * len(topics)
        for i in range(n):
            subscribed[i % len(topics)] += 1
        expected = sum(
            p * s for p, s in zip(published.per_topic, subscribed, strict=True)
        )
        await _settle(stats, expected, plan.settle, plan.duration + 60)
        costs = meter.stop()
    finally:
        await crowd.leave()
        peak = meter.close()

    first_to_last = max(1e-9, stats.last_at - publish_start)
    server_cpu = costs["server_cpu_s"]
    return {
        "run": "fanout",
        "transport": transport,
        "subscribers": n,
        "connected": crowd.connected,
        "topics": len(topics),
        "rate": rate or "max",
        "events": events,
        "published": sum(published.per_topic),
        "publish_errors": published.errors,
        "publish_per_s": round(sum(published.per_topic) / published.seconds, 1),
        "expected": expected,
        "deliveries": stats.deliveries,
        "deliveries_per_s": round(stats.deliveries / first_to_last, 1),
        "latency_ms": percentiles(stats.latencies),
        "lost": max(0, expected - stats.unique),
        "disordered": stats.disordered,
        "gaps": stats.gaps,
        "reconnects": stats.reconnects,
        "client_errors": stats.errors,
        **costs,
        "server_peak_rss_mib": peak,
        "cpu_us_per_delivery": (
            round(server_cpu / stats.deliveries * 1e6, 2)
            if server_cpu is not None and stats.deliveries
            else None
        ),
    }


async def _settle(stats: Stats, expected: int, quiet: float, cap: float) -> None:
    """Wait until every expected delivery came, or none came for `quiet` s."""
    deadline = time.monotonic() + cap
    last_count, last_change = -1, time.monotonic()
    while stats.unique < expected and time.monotonic() < deadline:
        if stats.deliveries != last_count:
            last_count, last_change = stats.deliveries, time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        await asyncio.sleep(0.02)


async def idle(
    target: Target, tree: ProcessTree | None, plan: Plan, kinds: str, n: int
) -> dict[str, Any]:
    """Open `n` idle connections (`sse`, `ws` or `sse+ws` half each)."""
    transports = kinds.split("+")
    topic = f"idle{uuid.uuid4().hex[:8]}"
    stats = Stats()
    await asyncio.sleep(plan.pause)
    before = await _rss(tree)
    crowds = [Crowd(target, make_subscriber(t, 10, ""), stats) for t in transports]
    meter = Meter(tree)
    try:
        for i, crowd in enumerate(crowds):
            share = n // len(crowds) + (1 if i < n % len(crowds) else 0)
            await crowd.join([topic] * share)
        await asyncio.sleep(2 * plan.pause)
        after = await _rss(tree)
        meter.start()
        await asyncio.sleep(plan.idle_seconds)
        costs = meter.stop()
    finally:
        for crowd in crowds:
            await crowd.leave()
    connected = sum(c.connected for c in crowds)
    server_cpu = costs["server_cpu_s"]
    return {
        "run": "idle",
        "transport": kinds,
        "connections": n,
        "connected": connected,
        "client_errors": stats.errors,
        "server_rss_before_mib": _mib(before),
        "server_rss_mib": _mib(after),
        "rss_kib_per_connection": (
            round((after - before) / connected / 1024, 2)
            if before is not None and after is not None and connected
            else None
        ),
        "idle_server_cpu_pct": (
            None
            if server_cpu is None
            else round(server_cpu / plan.idle_seconds * 100, 2)
        ),
    }


async def _rss(tree: ProcessTree | None) -> int | None:
    if tree is None:
        return None
    samples = []
    for _ in range(3):
        samples.append(tree.rss())
        await asyncio.sleep(0.3)
    return sum(samples) // len(samples)


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


async def publish_run(
    target: Target, tree: ProcessTree | None, events: int, batch: int, k: int
) -> dict[str, Any]:
    topics = [f"p{uuid.uuid4().hex[:8]}.{i}" for i in range(10)]
    meter = Meter(tree)
    meter.start()
    result = await publish(target, topics, events, 0, k, batch)
    costs = meter.stop()
    stored = sum(result.per_topic)
    server_cpu = costs["server_cpu_s"]
    return {
        "run": "publish",
        "mode": "batch" if batch > 1 else "single",
        "batch": batch,
        "concurrency": k,
        "events": events,
        "stored": stored,
        "errors": result.errors,
        "events_per_s": round(stored / result.seconds, 1),
        "requests_per_s": round(len(result.latencies) / result.seconds, 1),
        "request_ms": percentiles(result.latencies),
        **costs,
        "cpu_us_per_event": (
            round(server_cpu / stored * 1e6, 2) if server_cpu and stored else None
        ),
    }


Job = Callable[[Target, ProcessTree | None], Awaitable[dict[str, Any]]]


def jobs(plan: Plan) -> Iterator[tuple[str, Job]]:
    """Every run of the plan, in order, with a short label for progress."""
    if plan.fanout:
        grid = itertools.product(
            plan.transports, plan.subscribers, plan.topics, plan.rates
        )
        for transport, n, topics, rate in grid:
            label = f"{transport} n={n} topics={topics} rate={rate or 'max'}"

            def job(
                target: Target,
                tree: ProcessTree | None,
                a: tuple[str, int, str, float] = (transport, n, topics, rate),
            ) -> Awaitable[dict[str, Any]]:
                return fanout(target, tree, plan, *a)

            yield label, job
    for kinds, n in plan.idle:

        def idle_job(
            target: Target, tree: ProcessTree | None, a: tuple[str, int] = (kinds, n)
        ) -> Awaitable[dict[str, Any]]:
            return idle(target, tree, plan, *a)

        yield f"idle {kinds} {n}", idle_job
    for events, batch, k in plan.publish:

        def pub_job(
            target: Target,
            tree: ProcessTree | None,
            a: tuple[int, int, int] = (events, batch, k),
        ) -> Awaitable[dict[str, Any]]:
            return publish_run(target, tree, *a)

        yield f"publish {events} batch={batch} k={k}", pub_job


async def run_plan(plan: Plan, args: argparse.Namespace, out: Any) -> int:
    runs = list(jobs(plan))
    failures = 0

    def emit(result: dict[str, Any]) -> None:
        nonlocal failures
        if result.get("lost") or result.get("connected", 0) < result.get(
            "subscribers", result.get("connections", 0)
        ):
            failures += 1
        line = json.dumps(result)
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()

    if args.url:
        parts = urlsplit(args.url)
        target = Target(parts.hostname or "127.0.0.1", parts.port or 80)
        tree = ProcessTree(args.server_pid) if args.server_pid else None
        for label, job in runs:
            log(label)
            emit({**await job(target, tree), "workers": None, "server": args.url})
        return failures

    for workers in plan.workers:
        server: HeraldServer | None = None
        try:
            for label, job in runs:
                if server is None or not plan.reuse_server:
                    if server is not None:
                        server.stop()
                    server = HeraldServer(workers)
                    LIVE.append(server)
                    server.start()
                log(f"{label} workers={workers}")
                target = Target("127.0.0.1", server.port)
                result = await job(target, server.tree)
                emit({**result, "workers": workers, "server": "embedded"})
        finally:
            if server is not None:
                server.stop()
    return failures


def raise_open_files(need: int) -> None:
    """Lift RLIMIT_NOFILE for the bench and the server it starts (inherited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            log(f"open-files limit {hard} is below the {need} this plan needs")
            need = hard
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="moderate")
    p.add_argument("--full", action="store_true", help="same as --preset full")
    p.add_argument("--transports", help="comma list of sse, ws, poll")
    p.add_argument("--subscribers", help="comma list of subscriber counts")
    p.add_argument("--topics", help="comma list of topic counts, or n/K")
    p.add_argument("--rates", help="comma list of events/s; 0 is as fast as taken")
    p.add_argument("--duration", type=float, help="seconds of publishing at a rate")
    p.add_argument("--workers", help="comma list of Granian worker counts")
    p.add_argument("--idle", help="idle runs as KINDS:N, e.g. sse+ws:10000,ws:5000")
    p.add_argument(
        "--publish", help="publish runs as EVENTS:BATCH:CONNECTIONS, e.g. 5000:1:8"
    )
    p.add_argument("--no-idle", action="store_true")
    p.add_argument("--no-publish", action="store_true")
    p.add_argument("--no-fanout", action="store_true")
    p.add_argument("--max-deliveries", type=int, help="deliveries per max-rate run")
    p.add_argument("--batch", type=int, help="events per publish in fan-out runs")
    p.add_argument("--concurrency", type=int, help="publish connections, max rate")
    p.add_argument("--reuse-server", action="store_true", help="one server per -w")
    p.add_argument("--url", help="bench this Herald instead (loopback only)")
    p.add_argument("--server-pid", type=int, help="with --url: measure this tree")
    p.add_argument("--out", type=Path, help="also append the JSON lines here")
    args = p.parse_args(argv)
    if args.url:
        host = urlsplit(args.url).hostname or ""
        if not host.startswith(LOOPBACK):
            p.error("--url must be a loopback address: the bench loads it hard")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    base = PRESETS["full" if args.full else args.preset]
    plan = Plan(**{k: getattr(base, k) for k in base.__dataclass_fields__})

    def listed(text: str | None, kind: Callable[[str], Any]) -> list[Any] | None:
        return None if text is None else [kind(v) for v in text.split(",") if v]

    for name, kind in (
        ("transports", str),
        ("subscribers", int),
        ("topics", str),
        ("rates", float),
        ("workers", int),
    ):
        value = listed(getattr(args, name), kind)
        if value is not None:
            setattr(plan, name, value)
    for name in ("duration", "max_deliveries", "batch", "concurrency"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.idle is not None:
        plan.idle = [
            (k, int(n)) for k, _, n in (s.partition(":") for s in args.idle.split(","))
        ]
    if args.publish is not None:
        plan.publish = [
            (int(e), int(b), int(k))
            for e, b, k in (s.split(":") for s in args.publish.split(","))
        ]
    if args.no_idle:
        plan.idle = []
    if args.no_publish:
        plan.publish = []
    plan.fanout = not args.no_fanout
    plan.reuse_server = plan.reuse_server or args.reuse_server
    unknown = set(plan.transports) - set(ALL)
    if unknown:
        raise SystemExit(f"bench: unknown transports {sorted(unknown)}")
    return plan


def _terminate(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    biggest = max([*plan.subscribers, *(n for _, n in plan.idle), 0])
    raise_open_files(biggest + 2048)

    REPORTS.mkdir(exist_ok=True)
    path = args.out or REPORTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    log(f"results also in {path}")
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with path.open("a") as out:
            failures = int(runner(run_plan(plan, args, out)))
    finally:
        for server in LIVE:
            server.stop()
    if failures:
        log(f"{failures} runs lost events or could not connect every client")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
