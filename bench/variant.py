"""One variant's turn: a fresh sale, the burst from the load process, the drain, the checks."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from bench import report
from bench.drain import Backlog, wait_drained
from bench.invariants import Check, check_sale
from bench.load import LoadSpec
from bench.seed import Buyer, GraphQL, Sale, create_sale
from bench.stack import ROOT, BenchStack, StackError
from db.engine import asyncpg_dsn


@dataclass(frozen=True)
class Setting:
    """What every variant's turn shares within one run."""

    stack: BenchStack
    run_id: str
    ports: dict[str, list[int]]  # server ports per variant
    staff_token: str
    buyers: list[Buyer]
    products: int
    stock: int
    max_per_customer: int | None
    max_quantity: int
    duration: float
    requests: int
    warmup: float
    concurrency: int
    timeout: float
    drain_timeout: float
    client: str
    answer: str
    seed: int


async def run_variant(s: Setting, variant: str, round_: int) -> report.VariantRun:
    async with httpx.AsyncClient(timeout=60) as client:
        api = GraphQL(client, f"http://127.0.0.1:{s.ports['rushcart'][0]}/graphql")
        sale = await create_sale(api, s.staff_token, f"BENCH-{s.run_id}-{variant}-{round_}", s.products, s.stock,
                                 s.max_per_customer, warmup=s.warmup > 0)
    spec = LoadSpec(
        kind="ceiling" if variant == "ceiling" else "graphql", label=variant,
        targets=[("127.0.0.1", port) for port in s.ports[variant]],
        buyers=[(b.customer_id, b.token) for b in s.buyers], products=sale.products,
        warmup_products=sale.warmup_products, duration=s.duration, requests=s.requests, warmup=s.warmup,
        concurrency=s.concurrency, max_quantity=s.max_quantity, key_prefix=f"{s.run_id}-{variant}-{round_}",
        # The same seed for every variant of a round: they all get the same sequence of orders.
        seed=s.seed + round_, timeout=s.timeout, client=s.client, answer=s.answer,
    )
    redis: Any = (RedisCluster.from_url(s.stack.redis_url) if s.stack.cluster
                  else aioredis.Redis.from_url(s.stack.redis_url))
    pg = await asyncpg.create_pool(asyncpg_dsn(s.stack.database_url), min_size=1, max_size=2)
    try:
        return await _measure(s, variant, round_, spec, sale, redis, pg)
    finally:
        await pg.close()
        await redis.aclose()


async def _measure(s: Setting, variant: str, round_: int, spec: LoadSpec, sale: Sale, redis: Any,
                   pg: asyncpg.Pool) -> report.VariantRun:
    backlog = Backlog(redis)
    # Sampled from before the burst, so the drain is timed from the burst's end, not from when we looked.
    watcher = asyncio.create_task(backlog.watch())
    cpu_before = {kind: s.stack.cpu_seconds(kind) for kind in (variant, "redis", "worker")}
    shards_before = s.stack.shard_costs()
    try:
        load = await run_load(s.stack.data_dir / "runs", f"{variant}-{round_}", spec)
        cpu = {kind: s.stack.cpu_seconds(kind) - before for kind, before in cpu_before.items()}
        shards = {port: (scripts - shards_before[port][0], cpu_s - shards_before[port][1])
                  for port, (scripts, cpu_s) in s.stack.shard_costs().items()}
        ids = [oid for oid, _, _ in load["accepted"]]
        drain = await wait_drained(backlog, pg, load["ended_at"], ids, s.drain_timeout)
    finally:
        backlog.stop()
        await watcher
    caught_up = None
    if load["last_accept_s"] is not None:
        last_accept = load["started_at"] + load["last_accept_s"]
        empty_at = backlog.empty_since(last_accept)
        caught_up = None if empty_at is None else max(0.0, empty_at - last_accept)
    checks = await check_sale(pg, redis, sale, load["accepted"], load["uncertain"],
                              redis_counters=variant != "baseline")
    if drain is None:
        checks.append(Check("backlog drained and every accepted order persisted", False,
                            f"not within {s.drain_timeout:.0f}s"))
    remaining = int(await pg.fetchval("SELECT sum(stock) FROM product_stock WHERE product_id = ANY($1)", sale.products))
    offered = s.products * s.stock
    return report.summarise(variant, round_, load, offered, offered - remaining, drain, caught_up, backlog.peak,
                            checks, cpu[variant], cpu["redis"], cpu["worker"], list(shards.values()))


def _files(work: Path, name: str, spec: LoadSpec) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = work / f"{name}-spec.json", work / f"{name}-result.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    result_path.unlink(missing_ok=True)
    return spec_path, result_path


def _result(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


async def run_load(work: Path, name: str, spec: LoadSpec) -> dict[str, Any]:
    """Run the load generator as its own process (its progress bar shares our stderr); its result."""
    spec_path, result_path = _files(work, name, spec)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.load", str(spec_path), str(result_path), cwd=ROOT, start_new_session=True,
    )
    try:
        code = await process.wait()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    if code != 0:
        raise StackError(f"the load generator exited with {code}")
    return _result(result_path)
