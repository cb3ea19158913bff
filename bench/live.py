"""The live part of the benchmark: a crowd of `productStock` watchers on one API process while a sale runs on it.

For each crowd size, on a fresh API process of its own (so that its memory before the crowd is a
clean baseline):

1. a sale on one product from the load process (bench.load) with nobody watching: the sale alone;
2. the crowd connects from `watcher_processes` processes of their own (bench.watchers, over
   graphql-transport-ws), every watcher subscribed to that product's stock;
3. the same sale again, on the same product, while every stock change it makes is fanned out to
   the crowd: the sale watched;
4. the crowd leaves and reports every delay (receipt minus the event's `at`), pooled here.

The sale's p99 alone and watched come from the same run, a minute apart on the same process.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.load import ACCEPTED, LoadSpec, is_uncertain
from bench.report import fmt, percentile
from bench.seed import Buyer, GraphQL, create_sale
from bench.stack import ROOT, BenchStack, Child, StackError, process_cpu
from bench.variant import run_load

# Every stock change costs the buyer a unit: enough for any sale this part runs.
STOCK = 1_000_000
GOAL_WATCHERS = 10_000
GOAL_DELIVERY_P99_MS = 500.0
GOAL_SALE_P99_RATIO = 1.5
GOAL_KB_PER_WATCHER = 40.0


@dataclass(frozen=True)
class LiveSetting:
    stack: BenchStack
    run_id: str
    graphql_url: str  # where products are created (any rushcart process)
    staff_token: str
    buyers: list[Buyer]
    duration: float  # seconds of each sale phase
    concurrency: int
    rate: float  # the sale's requests per second (0: as fast as the process answers)
    watcher_processes: int
    max_quantity: int
    seed: int


@dataclass
class Sale:
    requests: int
    requests_per_s: float
    failed: int
    p50_ms: float
    p99_ms: float
    server_cpu_us: float  # the API process' CPU per request
    server_cpu_pct: float  # the API process' CPU over the sale, in % of one core
    crowd_cpu_pct: float  # the watcher processes' CPU over the sale, in % of one core (0 alone)


@dataclass
class LiveRun:
    watchers: int
    connected: int
    errors: int
    connect_s: float
    connect_per_s: float
    rss_before_mb: float
    rss_connected_mb: float
    rss_after_mb: float
    kb_per_watcher: float  # (RSS after the watched sale - RSS before the crowd) / watchers
    events: int  # stock changes received, all watchers together (first answers not counted)
    delivery_p50_ms: float
    delivery_p99_ms: float
    alone: Sale
    watched: Sale

    @property
    def sale_p99_ratio(self) -> float:
        return self.watched.p99_ms / self.alone.p99_ms if self.alone.p99_ms > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sale_p99_ratio": self.sale_p99_ratio}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise StackError(f"no VmRSS for process {pid}")


def _sale(load: dict[str, Any], cpu_s: float, crowd_cpu_s: float) -> Sale:
    outcomes: dict[str, int] = load["outcomes"]
    failed = sum(n for code, n in outcomes.items() if is_uncertain(code))
    requests = int(load["requests"])
    if outcomes.get(ACCEPTED, 0) == 0:
        raise StackError(f"the live sale bought nothing: {outcomes}")
    wall = load["elapsed"] + load["warmup_s"]  # the CPU figures include the warm-up
    return Sale(requests, requests / load["elapsed"], failed, percentile(load["latencies_ms"], 50),
                percentile(load["latencies_ms"], 99), cpu_s / max(requests, 1) * 1e6, 100 * cpu_s / wall,
                100 * crowd_cpu_s / wall)


class Crowd:
    """The watcher processes of one crowd; every one of them is gone after close()."""

    def __init__(self, work: Path, name: str) -> None:
        self.work = work
        self.name = name
        self.processes: list[asyncio.subprocess.Process] = []
        self.delay_files: list[Path] = []

    async def open(self, ws_url: str, product_id: int, count: int, processes: int) -> tuple[int, float]:
        """Start the processes, wait until every watcher has its first answer: (ready, seconds)."""
        self.work.mkdir(parents=True, exist_ok=True)
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        commands = []
        for i, share in enumerate(s for s in shares if s):
            path = self.work / f"{self.name}-{i}-delays.json"
            path.unlink(missing_ok=True)
            self.delay_files.append(path)
            commands.append(["bench.watchers", ws_url, str(product_id), str(share), str(path)])
        # A generous deadline: connecting costs a few ms of CPU per watcher on a shared machine.
        lines = await self.spawn(commands, timeout=60 + count / 50)
        return sum(int(line["ready"]) for line in lines), max(float(line["connect_seconds"]) for line in lines)

    async def spawn(self, commands: list[list[str]], timeout: float) -> list[dict[str, Any]]:
        """Start one process per command (`python -m` and its arguments), each in a session of its own
        with a pipe for stdin, and wait for each one's first line of JSON."""
        self.work.mkdir(parents=True, exist_ok=True)
        for command in commands:
            self.processes.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, start_new_session=True))
        return list(await asyncio.wait_for(asyncio.gather(*(self.next_line(p) for p in self.processes)),
                                           timeout=timeout))

    @staticmethod
    async def next_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdout is not None
        raw = await process.stdout.readline()
        if not raw:
            raise StackError(f"a crowd process exited with {await process.wait()} before reporting")
        line: dict[str, Any] = json.loads(raw)
        return line

    def cpu_seconds(self) -> float:
        return sum(process_cpu(p.pid) for p in self.processes)

    async def close(self) -> tuple[int, int, list[float]]:
        """Let every watcher leave: (events, errors, every delay in ms)."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        lines = await asyncio.wait_for(asyncio.gather(*(self.next_line(p) for p in self.processes)), timeout=120)
        delays: list[float] = []
        for path in self.delay_files:
            delays.extend(json.loads(path.read_text()))
        return sum(int(line["events"]) for line in lines), sum(int(line["errors"]) for line in lines), delays

    async def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def _sale_on(s: LiveSetting, server: Child, crowd: Crowd, product: int, warmup: list[int], name: str,
                   round_seed: int) -> Sale:
    spec = LoadSpec(
        kind="graphql", label=name, targets=[("127.0.0.1", server.port)],
        buyers=[(b.customer_id, b.token) for b in s.buyers], products=[product], warmup_products=warmup,
        duration=s.duration, requests=0, warmup=1.0, concurrency=s.concurrency, max_quantity=s.max_quantity,
        key_prefix=f"{s.run_id}-{name}", seed=round_seed, timeout=30, client="raw", rate=s.rate,
    )
    kind = server.name.rsplit("-", 1)[0]
    cpu_before, crowd_before = s.stack.cpu_seconds(kind), crowd.cpu_seconds()
    load = await run_load(s.stack.data_dir / "runs", name, spec)
    load["warmup_s"] = spec.warmup
    return _sale(load, s.stack.cpu_seconds(kind) - cpu_before, crowd.cpu_seconds() - crowd_before)


async def measure(s: LiveSetting, watchers: int, say: Callable[[str], None]) -> LiveRun:
    """One crowd of `watchers` on a fresh API process: the sale alone, the crowd, the sale watched."""
    async with httpx.AsyncClient(timeout=60) as client:
        sale = await create_sale(GraphQL(client, s.graphql_url), s.staff_token, f"LIVE-{s.run_id}-{watchers}", 1,
                                 STOCK, None, warmup=True)
    product = sale.products[0]
    server = s.stack.start_server(f"live{watchers}-0")
    crowd = Crowd(s.stack.data_dir / "runs", f"live-{watchers}")
    try:
        alone = await _sale_on(s, server, crowd, product, sale.warmup_products, f"live-{watchers}-alone", s.seed)
        rss_before = rss_mb(server.process.pid)
        ws_url = f"ws://127.0.0.1:{server.port}/graphql"
        ready, connect_s = await crowd.open(ws_url, product, watchers, s.watcher_processes)
        rss_connected = rss_mb(server.process.pid)
        say(f"  {ready:,} of {watchers:,} watchers connected in {connect_s:.1f}s; "
            f"API RSS {rss_before:.0f} -> {rss_connected:.0f} MB")
        watched = await _sale_on(s, server, crowd, product, [], f"live-{watchers}-watched", s.seed + 1)
        rss_after = rss_mb(server.process.pid)
        events, errors, delays = await crowd.close()
    finally:
        await crowd.kill()
        s.stack.stop_child(server)
    return LiveRun(
        watchers=watchers, connected=ready, errors=errors, connect_s=connect_s,
        connect_per_s=ready / connect_s if connect_s > 0 else math.nan,
        rss_before_mb=rss_before, rss_connected_mb=rss_connected, rss_after_mb=rss_after,
        kb_per_watcher=(rss_after - rss_before) * 1024 / watchers, events=events,
        delivery_p50_ms=percentile(delays, 50), delivery_p99_ms=percentile(delays, 99), alone=alone, watched=watched,
    )


ROWS: list[tuple[str, str, int]] = [
    ("watchers connected", "connected", 0),
    ("watcher errors", "errors", 0),
    ("connect rate (watchers/s)", "connect_per_s", 0),
    ("API RSS before the crowd (MB)", "rss_before_mb", 0),
    ("API RSS with the crowd, after the sale (MB)", "rss_after_mb", 0),
    ("KB per watcher", "kb_per_watcher", 1),
    ("stock changes received", "events", 0),
    ("delivery p50 (ms)", "delivery_p50_ms", 0),
    ("delivery p99 (ms)", "delivery_p99_ms", 0),
    ("sale requests/s alone", "alone.requests_per_s", 0),
    ("sale requests/s watched", "watched.requests_per_s", 0),
    ("sale p50 alone (ms)", "alone.p50_ms", 1),
    ("sale p50 watched (ms)", "watched.p50_ms", 1),
    ("sale p99 alone (ms)", "alone.p99_ms", 1),
    ("sale p99 watched (ms)", "watched.p99_ms", 1),
    ("sale p99 watched / alone", "sale_p99_ratio", 2),
    ("sale failed requests (watched)", "watched.failed", 0),
    ("API CPU during the sale alone (% of a core)", "alone.server_cpu_pct", 0),
    ("API CPU during the sale watched (% of a core)", "watched.server_cpu_pct", 0),
    ("watchers' CPU during the sale (% of a core)", "watched.crowd_cpu_pct", 0),
    ("API CPU per request alone (us)", "alone.server_cpu_us", 0),
    ("API CPU per request watched (us)", "watched.server_cpu_us", 0),
]


LABEL_WIDTH = max(len(label) for label, _, _ in ROWS) + 1


def _value(run: LiveRun, path: str) -> float:
    value: Any = run
    for part in path.split("."):
        value = getattr(value, part)
    return float(value)


def section(runs: list[LiveRun], s: LiveSetting) -> list[str]:
    pace = (f"{s.rate:g} requests/s from {s.concurrency} connections" if s.rate
            else f"as fast as answered, {s.concurrency} in flight")
    lines = [f"live updates: productStock watchers (graphql-transport-ws, {s.watcher_processes} processes) on one "
             f"API process while a sale runs on it ({pace}, {s.duration:g}s alone, then {s.duration:g}s "
             "watched):",
             f"{'watchers':<{LABEL_WIDTH}}" + "".join(f"{r.watchers:>12,}" for r in runs)]
    for label, path, digits in ROWS:
        lines.append(f"{label:<{LABEL_WIDTH}}" + "".join(f"{fmt(_value(r, path), digits):>12}" for r in runs))
    goal = next((r for r in runs if r.watchers >= GOAL_WATCHERS), None)
    if goal is None:
        lines.append(f"goals are set at {GOAL_WATCHERS:,} watchers (--live 1000,5000,10000)")
    else:
        met = [
            ("delivery p99", goal.delivery_p99_ms, GOAL_DELIVERY_P99_MS, "ms"),
            ("sale p99 watched / alone", goal.sale_p99_ratio, GOAL_SALE_P99_RATIO, "x"),
            ("KB per watcher", goal.kb_per_watcher, GOAL_KB_PER_WATCHER, " KB"),
        ]
        lines.append(f"at {goal.watchers:,} watchers: " + ", ".join(
            f"{name} {value:,.{1 if unit != 'ms' else 0}f}{unit} (goal < {bound:g}{unit}: "
            f"{'met' if value < bound else 'not met'})" for name, value, bound, unit in met))
    return lines


def violations(runs: list[LiveRun]) -> list[str]:
    """What makes the run fail: a watcher that did not connect or broke, a sale request that failed."""
    problems = []
    for r in runs:
        if r.connected != r.watchers or r.errors:
            problems.append(f"live {r.watchers:,}: {r.connected:,} connected, {r.errors} watcher errors")
        if r.alone.failed or r.watched.failed:
            problems.append(f"live {r.watchers:,}: {r.alone.failed + r.watched.failed} sale requests failed")
    return problems


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if any(n < 0 for n in sizes):
        raise ValueError("watcher counts must be positive")
    return [n for n in sizes if n > 0]

