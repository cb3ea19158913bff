"""Persisting accepted orders: the product's batches against one transaction per order.

Both sides start where the workers start: orders reserved in Redis by the product's own
`Orders.reserve` (each with its record, its entry in `orders:topersist` and its units held), the
same sequence of buyers, products and quantities, each side on fresh products of its own. Then,
timed, until `orders:topersist` is empty:

- batched: the product's `persist_pending` in batches of `PERSIST_BATCH_SIZE`, one transaction per
  batch: a multi-row INSERT of orders and of items, one stock UPDATE (db.order_persistence);
- single: the same batches read from Redis the same way, but each order its own transaction on
  one pooled asyncpg connection: one prepared statement that inserts the order and its items and
  takes its units off `product_stock` (data-modifying CTEs, as the baseline writes its orders),
  committed on its own. One statement is the fewest round trips the design allows; BEGIN, three
  statements and COMMIT would do the same work slower.

Both write the same rows into the real, hash-partitioned `orders` and `order_items` on the same
database with the same durability (plain commits; fsync and synchronous_commit as PostgreSQL runs
them, recorded), both write one batch at a time as the workers do under their drain lock, and both
finish the Redis side with the product's `orders_persisted` script after their commits, one call
per batch. The workers are stopped first, so nothing else persists these orders. Afterwards each
side's sale goes through the variants' invariant checks.

The time inside PostgreSQL transactions is taken apart from the Redis and Python work both sides
share, and a bare flushed commit is timed: the ratio depends on what a commit costs on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.invariants import Check, Checked, check_sale
from bench.seed import Buyer, GraphQL, Sale, create_sale
from bench.stack import BenchStack
from db import keys
from db.backends import Backends
from db.engine import asyncpg_dsn
from db.order_persistence import backlog, finish_in_redis, persist_every_queue, read_records
from db.order_records import OrderRecord
from db.values import as_text
from server.settings import Settings
from server.state import AppState, close_state, open_state

SIDES = ("batched", "single")
# Persisted before the timed part, untimed: connections opened, statements prepared, caches warm.
WARMUP_ORDERS = 50
# Reservations in flight while the input is made; that part is not timed.
RESERVE_CONCURRENCY = 32
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "commit_delay")
COMMIT_PROBES = 200
TARGET_RATIO = 10.0

# Nothing is written when the order is already there (ON CONFLICT, as the batch does): a second
# run persists nothing twice. The CTEs that write items and stock see only an inserted order.
PERSIST_ONE = """
WITH new_order AS (
    INSERT INTO orders (customer_id, id, status, cancel_reason, total_cents, currency, idempotency_key,
                        created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT DO NOTHING RETURNING customer_id, id, status
), new_items AS (
    INSERT INTO order_items (customer_id, order_id, product_id, quantity, unit_price_cents)
    SELECT o.customer_id, o.id, l.pid, l.qty, l.price
    FROM new_order o, unnest($10::bigint[], $11::int[], $12::int[]) AS l(pid, qty, price)
), sold AS (
    UPDATE product_stock s SET stock = s.stock - l.qty
    FROM new_order o, unnest($10::bigint[], $11::int[]) AS l(pid, qty)
    WHERE s.product_id = l.pid AND o.status <> 'CANCELLED'
)
SELECT count(*) FROM new_order
"""


@dataclass
class Stopwatch:
    seconds: float = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started


class SessionClock:
    """The product's session factory, timing its sessions: a batch's time in PostgreSQL (checkout,
    statements, commit) apart from its Redis and Python work, without touching the product's code."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], watch: Stopwatch) -> None:
        self._sessions = sessions
        self._watch = watch

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        with self._watch.running():
            async with self._sessions() as session:
                yield session


@dataclass
class SideRun(Checked):
    side: str
    orders: int  # persisted in the timed part
    items: int  # order_items rows written in the timed part
    elapsed_s: float
    postgres_s: float  # of elapsed_s, inside PostgreSQL transactions; the rest is Redis and Python
    orders_per_s: float
    items_per_s: float
    checks: list[Check] = field(default_factory=list)


@dataclass
class PersistenceRun:
    orders: int
    batch_size: int
    durability: dict[str, str]
    batched: SideRun
    single: SideRun

    commit_ms: float  # median of a bare commit that must be flushed: what every single order pays at least

    @property
    def ratio(self) -> float | None:
        """Orders per second, batched / single."""
        return self.batched.orders_per_s / self.single.orders_per_s if self.single.orders_per_s else None

    @property
    def postgres_ratio(self) -> float | None:
        """The same for the time inside PostgreSQL alone: what the Redis side both share dilutes."""
        if not (self.batched.postgres_s and self.single.postgres_s and self.single.orders):
            return None
        return (self.batched.orders / self.batched.postgres_s) / (self.single.orders / self.single.postgres_s)

    def to_json(self) -> dict[str, Any]:
        return {"orders": self.orders, "warmup_orders": WARMUP_ORDERS, "batch_size": self.batch_size,
                "durability": self.durability, "commit_ms": self.commit_ms, "batched": self.batched.to_json(),
                "single": self.single.to_json(), "ratio": self.ratio, "postgres_ratio": self.postgres_ratio}


@dataclass(frozen=True)
class Planned:
    customer_id: int
    product: int  # index into the side's products
    quantity: int


def plan(buyers: list[Buyer], products: int, max_quantity: int, count: int, seed: int) -> list[Planned]:
    """The orders to reserve, one line each as the load's; both sides get the same list."""
    rng = random.Random(seed)
    return [Planned(rng.choice(buyers).customer_id, rng.randrange(products), rng.randint(1, max_quantity))
            for _ in range(count)]


async def create_sales(api_url: str, token: str, prefix: str, products: int, stock: int) -> dict[str, Sale]:
    """Fresh products for each side, through the API like the variants' (so while it is still up)."""
    async with httpx.AsyncClient(timeout=60) as client:
        api = GraphQL(client, api_url)
        return {side: await create_sale(api, token, f"{prefix}-{side}", products, stock, None, warmup=False)
                for side in SIDES}


async def _reserve(state: AppState, sale: Sale, orders: list[Planned], key_prefix: str) -> list[tuple[str, int, int]]:
    """Reserve through the product's own code; [(order id, product id, units)] as the load reports them."""
    gate = asyncio.Semaphore(RESERVE_CONCURRENCY)

    async def one(i: int, order: Planned) -> tuple[str, int, int]:
        pid = sale.products[order.product]
        async with gate:
            reservation = await state.orders.reserve(order.customer_id, [(pid, order.quantity)], f"{key_prefix}-{i}")
        return reservation.order.id, pid, order.quantity

    return list(await asyncio.gather(*(one(i, order) for i, order in enumerate(orders))))


async def _insert_each(pool: asyncpg.Pool, records: list[OrderRecord]) -> int:
    inserted = 0
    async with pool.acquire() as conn:
        write = await conn.prepare(PERSIST_ONE)
        for r in records:
            # No explicit transaction: the one statement is its own, committed (and flushed) alone.
            inserted += int(await write.fetchval(
                r.customer_id, r.id, r.status, r.cancel_reason, r.total_cents, r.currency, r.idempotency_key,
                r.created_at, r.expires_at, [line.product_id for line in r.lines],
                [line.quantity for line in r.lines], [line.unit_price_cents for line in r.lines],
            ))
    return inserted


async def persist_one_by_one(state: AppState, pool: asyncpg.Pool, batch_size: int, watch: Stopwatch) -> int:
    """Drain every to-persist queue with one transaction per order; returns orders inserted."""
    inserted = 0
    for queue, _ in keys.all_orders_to_persist():
        inserted += await _one_by_one(state, pool, queue, batch_size, watch)
    return inserted


async def _one_by_one(state: AppState, pool: asyncpg.Pool, queue: str, batch_size: int, watch: Stopwatch) -> int:
    inserted = 0
    while True:
        ids = [as_text(i) for i in await state.redis.zrange(queue, 0, batch_size - 1)]
        if not ids:
            return inserted
        # Read and finished in Redis as the product's batches do it: one reply per batch each way.
        records, _ = await read_records(state.backends, ids)  # an id without a record: the checks report it
        if not records:
            return inserted
        with watch.running():
            inserted += await _insert_each(pool, records)
        await finish_in_redis(state.backends, records)


async def _side(state: AppState, pg: asyncpg.Pool, side: str, sale: Sale, orders: list[Planned], key_prefix: str,
                persist: Callable[[Stopwatch], Awaitable[int]]) -> SideRun:
    waiting = await backlog(state.redis)
    warmup = await _reserve(state, sale, orders[:WARMUP_ORDERS], f"{key_prefix}-warmup")
    warmed = await persist(Stopwatch())
    timed = await _reserve(state, sale, orders[WARMUP_ORDERS:], key_prefix)
    in_postgres = Stopwatch()
    started = time.perf_counter()
    inserted = await persist(in_postgres)
    elapsed = time.perf_counter() - started
    accepted = warmup + timed
    checks = [Check("nothing else waiting in orders:topersist before the side", waiting == 0,
                    f"{waiting} orders of earlier variants were still waiting")]
    checks += await check_sale(pg, state.redis, sale, accepted, [], redis_counters=True)
    left = await backlog(state.redis)
    checks += [
        Check("orders:topersist empty afterwards", left == 0, f"{left} orders left"),
        Check("inserted == reserved", warmed + inserted == len(accepted),
              f"{warmed + inserted} inserted, {len(accepted)} reserved"),
    ]
    # One line per order here, but counted, not assumed.
    items = int(await pg.fetchval(
        "SELECT count(*) FROM order_items WHERE product_id = ANY($1) AND order_id = ANY($2::uuid[])",
        sale.products, [oid for oid, _, _ in timed]))
    return SideRun(side, inserted, items, elapsed, in_postgres.seconds, inserted / elapsed, items / elapsed, checks)


async def commit_ms(pg: asyncpg.Pool) -> float:
    """Median milliseconds of the cheapest commit that must reach the disk."""
    times = []
    async with pg.acquire() as conn:
        for _ in range(COMMIT_PROBES):
            started = time.perf_counter()
            # A transactional WAL message: WAL that the commit must flush, and no table touched.
            await conn.execute("SELECT pg_logical_emit_message(true, 'rushcart-bench', '')")
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


async def measure(stack: BenchStack, sales: dict[str, Sale], buyers: list[Buyer], count: int, max_quantity: int,
                  seed: int, key_prefix: str) -> PersistenceRun:
    """Both sides, batched first; the workers must be stopped (nothing else may persist)."""
    settings = Settings.from_env(stack.env)
    state = open_state(settings)
    dsn = asyncpg_dsn(stack.database_url)
    # One connection is all one writer uses; its statements are prepared once per batch it holds.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    pg = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        rows = await pg.fetch("SELECT name, setting FROM pg_settings WHERE name = ANY($1)", list(DURABILITY_SETTINGS))
        durability = {r["name"]: r["setting"] for r in rows}
        commit = await commit_ms(pg)
        orders = plan(buyers, len(sales["batched"].products), max_quantity, WARMUP_ORDERS + count, seed)
        batch_size = settings.persist_batch_size
        batched = await _side(
            state, pg, "batched", sales["batched"], orders, f"{key_prefix}-batched",
            lambda watch: persist_every_queue(
                Backends(state.redis, state.backends.scripts,
                         cast(async_sessionmaker[AsyncSession], SessionClock(state.backends.sessions, watch))),
                batch_size))
        single = await _side(
            state, pg, "single", sales["single"], orders, f"{key_prefix}-single",
            lambda watch: persist_one_by_one(state, pool, batch_size, watch))
    finally:
        await pg.close()
        await pool.close()
        await close_state(state)
    return PersistenceRun(count, batch_size, durability, batched, single, commit)


def stock_needed(count: int, max_quantity: int) -> int:
    """Units per product so that no reservation is refused, even if every order picks one product."""
    return (WARMUP_ORDERS + count) * max_quantity


ROWS: list[tuple[str, Callable[[SideRun], float], int]] = [
    ("orders/s", lambda s: s.orders_per_s, 0),
    ("order_items rows/s", lambda s: s.items_per_s, 0),
    ("seconds", lambda s: s.elapsed_s, 2),
    ("  of which in PostgreSQL", lambda s: s.postgres_s, 2),
]


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def section(run: PersistenceRun) -> list[str]:
    """The printed comparison: a small table and the ratios."""
    width = 34
    durability = ", ".join(f"{k} {run.durability.get(k, '?')}" for k in ("fsync", "synchronous_commit"))
    lines = [
        f"persistence of {run.orders:,} reserved orders from Redis into PostgreSQL, batches of {run.batch_size} "
        f"vs one transaction per order ({durability}, a flushed commit {run.commit_ms:.2f} ms):",
        f"{'':<{width}}" + "".join(f"{s:>14}" for s in SIDES),
    ]
    sides = [run.batched, run.single]
    for label, get, digits in ROWS:
        lines.append(f"{label:<{width}}" + "".join(f"{get(s):>14,.{digits}f}" for s in sides))
    lines.append(f"{'invariants':<{width}}" + "".join(f"{'ok' if s.ok else 'VIOLATED':>14}" for s in sides))
    verdict = "" if run.ratio is None else ("met" if run.ratio >= TARGET_RATIO else "not met")
    lines.append(f"batched / single: orders/s {_times(run.ratio)} (target >= {TARGET_RATIO:g}x: {verdict}), "
                 f"time in PostgreSQL alone {_times(run.postgres_ratio)}")
    return lines


def violations(run: PersistenceRun | None) -> list[str]:
    if run is None:
        return []
    return [f"persistence {s.side}: {c.name}: {c.detail}" for s in (run.batched, run.single) for c in s.checks
            if not c.ok]
