"""What PgBouncer in transaction pooling costs: the same work straight to PostgreSQL and through it.

`python -m bench.pooler [--rounds 3]` starts its own embedded PostgreSQL and Redis under
`$RUSHCART_DATA_DIR/bench-pooler` and a PgBouncer (transaction pooling, as the tests run it), then
alternates the two paths round by round and prints medians and the ratio:

- persistence batches/s: orders reserved in Redis by the product's own `Orders.reserve`, then
  persisted by the product's `persist_pending` in batches of 500 (db.order_persistence), on an
  engine built as the worker builds it (`DATABASE_POOLER=pgbouncer` through PgBouncer: no
  prepared-statement caching);
- baseline requests/s: the row-lock baseline's purchase transaction (bench.baseline_app: advisory
  lock, the product rows FOR UPDATE, insert and decrement, commit) from 16 concurrent asyncpg
  connections (`statement_cache_size=0` through PgBouncer).

Needs the `pgbouncer` binary (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.baseline_app import LOCK_AND_CHECK, WRITE
from db.backends import Backends, redis_client
from db.engine import asyncpg_dsn, make_engine, make_sessionmaker
from db.migrate import upgrade
from db.order_persistence import persist_every_queue
from db.orders import Orders
from db.stock import StockCounters
from server.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.pgbouncer import PgBouncer

ORDERS_PER_ROUND = 3000
BATCH = 500
BASELINE_REQUESTS = 1500
CONCURRENCY = 16


async def new_products(dsn: str, count: int, stock: int) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        ids = []
        for _ in range(count):
            pid = await conn.fetchval(
                "WITH p AS (INSERT INTO products (sku, name, price_cents) VALUES ($1, 'bench', 100) RETURNING id) "
                "INSERT INTO product_stock (product_id, stock) SELECT id, $2 FROM p RETURNING product_id",
                f"POOL-{uuid.uuid4().hex[:10]}", stock)
            ids.append(int(pid))
        return ids
    finally:
        await conn.close()


async def persistence_round(url: str, redis_url: str, direct_dsn: str, statement_cache: bool) -> float:
    """Batches per second persisting ORDERS_PER_ROUND orders of fresh products."""
    pids = await new_products(direct_dsn, 5, ORDERS_PER_ROUND)
    engine = make_engine(url, pool_size=2, statement_cache=statement_cache)
    backends = Backends.of(redis_client(redis_url), make_sessionmaker(engine))
    orders = Orders(backends, StockCounters(backends), 900)
    try:
        base = int(time.time() * 1000) % 10**9
        for i in range(ORDERS_PER_ROUND):
            await orders.reserve(base + i, [(pids[i % len(pids)], 1)], f"k{base}-{i}")
        started = time.perf_counter()
        persisted = await persist_every_queue(backends, BATCH)
        elapsed = time.perf_counter() - started
        assert persisted == ORDERS_PER_ROUND, persisted
        return (ORDERS_PER_ROUND / BATCH) / elapsed
    finally:
        await backends.redis.aclose()
        await engine.dispose()


async def baseline_round(dsn: str, direct_dsn: str, statement_cache: bool) -> float:
    """Purchases per second of the row-lock baseline's transaction."""
    pids = await new_products(direct_dsn, 5, BASELINE_REQUESTS)
    pool = await asyncpg.create_pool(dsn, min_size=CONCURRENCY, max_size=CONCURRENCY,
                                     statement_cache_size=100 if statement_cache else 0)
    assert pool is not None
    customers = iter(range(10**6 + int(time.time()) % 10**6, 10**7))
    remaining = BASELINE_REQUESTS

    async def buyer() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            customer, pid = next(customers), pids[remaining % len(pids)]
            async with pool.acquire() as conn:
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({customer})")
                await conn.fetch(LOCK_AND_CHECK, [pid], customer, "k")
                now = datetime.now(UTC)
                await conn.execute(WRITE, customer, str(uuid.uuid4()), 100, "USD", "k", now,
                                   now + timedelta(minutes=15), [pid], [1], [100])
                await conn.execute("COMMIT")

    try:
        started = time.perf_counter()
        await asyncio.gather(*[buyer() for _ in range(CONCURRENCY)])
        return BASELINE_REQUESTS / (time.perf_counter() - started)
    finally:
        await pool.close()


async def measure(rounds: int, direct_url: str, pooled_url: str, redis_url: str) -> dict[str, dict[str, list[float]]]:
    direct_dsn = asyncpg_dsn(direct_url)
    results: dict[str, dict[str, list[float]]] = {"persistence batches/s": {}, "baseline requests/s": {}}
    paths: list[tuple[str, str, bool]] = [("direct", direct_url, True), ("pgbouncer", pooled_url, False)]
    for _ in range(rounds):
        for name, url, cache in paths:
            results["persistence batches/s"].setdefault(name, []).append(
                await persistence_round(url, redis_url, direct_dsn, cache))
            results["baseline requests/s"].setdefault(name, []).append(
                await baseline_round(asyncpg_dsn(url), direct_dsn, cache))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("RUSHCART_DATA_DIR") or ".data") / "bench-pooler"
    postgres = EmbeddedPostgres(root / "pg", database="rushcart_pooler")
    redis_server = EmbeddedRedis(root / "redis")
    bouncer: PgBouncer | None = None
    try:
        direct_url = postgres.start()
        postgres.recreate_database()
        upgrade(direct_url)
        shutil.rmtree(root / "redis", ignore_errors=True)
        redis_url = redis_server.start()
        bouncer = PgBouncer(root / "pgbouncer", direct_url, pool_size=CONCURRENCY)
        pooled_url = bouncer.start()
        results = asyncio.run(measure(args.rounds, direct_url, pooled_url, redis_url))
    finally:
        if bouncer is not None:
            bouncer.stop()
        redis_server.stop()
        postgres.stop()
    print(f"{args.rounds} rounds, medians (each round: direct, then through PgBouncer)")
    for metric, by_path in results.items():
        direct, pooled = statistics.median(by_path["direct"]), statistics.median(by_path["pgbouncer"])
        rounds: Any = {k: [round(v, 1) for v in vs] for k, vs in by_path.items()}
        print(f"  {metric}: direct {direct:,.1f}, pgbouncer {pooled:,.1f}, ratio {pooled / direct:.2f}  {rounds}")


if __name__ == "__main__":
    main()
