"""What one hot product costs the shard that holds it, alone: `python -m bench.hot_shard`.

In a cluster the hot product's shard sees that product's step of every order (`stock_take`, and
`stock_unhold` once the order is persisted) whatever else the deployment does; the customers'
steps spread over every shard with the buckets. This runs those product steps, from many
concurrent clients, against one Valkey 9.1 node of its own (AOF `always`, as deployed), and reads
what they cost inside the server (INFO commandstats) and in its process' CPU, per order: the takes
one order a call, then as the API sends them, concurrent orders together (db.take_batches). The
one-node call (`order_reserve`, the product's and the customer's part in one script) is measured
the same way in the same run, as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from bench.stack import process_cpu
from db import buckets
from db.order_records import new_order_id
from db.scripts import OrderRequest, PersistedOrder, ReserveLine, Scripts
from server.embedded import EmbeddedRedis

PRODUCT = 1
CUSTOMERS = 2000


async def _scripts_usec(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def _gather_bounded(concurrency: int, calls: list[Callable[[], Awaitable[object]]]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def measure(server: EmbeddedRedis, orders: int, concurrency: int) -> dict[str, tuple[float, float]]:
    """µs inside scripts and µs of server CPU per order, for the product's steps and the one-node call."""
    assert server.process is not None
    client = Redis(port=server.port, max_connections=concurrency + 8)
    scripts = Scripts(client, in_steps=True)
    # The same takes each in a call of its own, side by side, as without db.take_batches.
    one_by_one = Scripts(client, in_steps=True, take_batch=0)
    await scripts.stock_rebuild(PRODUCT, stock=10 * orders, held=0, price_cents=1000, currency="USD", limit="")
    for cid in range(1, CUSTOMERS + 1):
        await scripts.allowance_load(cid, {}, 86400)
    results: dict[str, tuple[float, float]] = {}

    async def timed(name: str, calls: list[Callable[[], Awaitable[object]]]) -> None:
        scripts_before, cpu_before = await _scripts_usec(client), process_cpu(server.process.pid)
        await _gather_bounded(concurrency, calls)
        spent = await _scripts_usec(client) - scripts_before
        results[name] = (spent / orders, 1e6 * (process_cpu(server.process.pid) - cpu_before) / orders)

    line = ReserveLine(PRODUCT, 1)
    await timed("stock_take, one order a call", [
        (lambda oid=oid: one_by_one.stock_take(order_id=oid, line=line, drop_passes=(), mark_ttl_seconds=86400))
        for oid in [new_order_id(1 + i % CUSTOMERS) for i in range(orders)]])
    ids = [new_order_id(1 + i % CUSTOMERS) for i in range(orders)]
    await timed("stock_take, concurrent orders together", [
        (lambda oid=oid: scripts.stock_take(order_id=oid, line=line, drop_passes=(), mark_ttl_seconds=86400))
        for oid in ids])
    batch = 500
    persisted = [PersistedOrder(oid, 1 + i % CUSTOMERS, [(PRODUCT, 1)]) for i, oid in enumerate(ids)]
    await timed("stock_unhold (batches of 500)", [
        (lambda group=persisted[i:i + batch]: scripts.stock_unhold(PRODUCT, [o.order_id for o in group]))
        for i in range(0, orders, batch)])
    now_ms = int(time.time() * 1000)
    await timed("order_reserve (one node, one call)", [
        (lambda i=i: scripts.order_reserve(OrderRequest(
            customer_id=1 + i % CUSTOMERS, order_id=new_order_id(1 + i % CUSTOMERS), idempotency_key=f"k{i}",
            fingerprint="f", lines=[line], now_ms=now_ms, expires_ms=now_ms + 900_000,
            idempotency_ttl_seconds=86400, allowance_ttl_seconds=86400, persist_flag_ms=5000,
            max_total_cents=2**31 - 1)))
        for i in range(orders)])
    for closing in (scripts, one_by_one):
        await closing.aclose()
    await client.aclose()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hot_shard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=20000, help="orders per measurement")
    p.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    p.add_argument("--rounds", type=int, default=3, help="repeat; medians are shown")
    args = p.parse_args(argv)
    buckets.configure(buckets.DEFAULT_COUNT)
    runs: list[dict[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="rushcart-hot-shard-") as folder:
        for _ in range(args.rounds):
            server = EmbeddedRedis(Path(folder) / f"valkey-{len(runs)}")
            server.start()
            try:
                runs.append(asyncio.run(measure(server, args.orders, args.concurrency)))
            finally:
                server.stop()
    print(f"one product's steps on its shard: {args.orders:,} orders, {args.concurrency} clients, "
          f"median of {args.rounds} rounds (Valkey 9.1, appendfsync always)\n")
    print(f"{'per order':<40}{'us in scripts':>16}{'server CPU us':>16}")
    for name in runs[0]:
        scripts_us = statistics.median(r[name][0] for r in runs)
        cpu_us = statistics.median(r[name][1] for r in runs)
        print(f"{name:<40}{scripts_us:>16.1f}{cpu_us:>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
