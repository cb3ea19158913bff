"""Stock counters in Redis: the live `available` figure of every product.

PostgreSQL's `product_stock.stock` is on-hand minus what persisted PENDING and PAID orders hold;
the Redis counter additionally subtracts what orders not yet persisted hold (`stock:held`).

A missing counter (Redis restart, flush) is rebuilt lazily. The rebuild reads the product's
`product_stock` row FOR SHARE, which waits for any transaction that is changing the row
(persistence, release, restock) to commit, and blocks new ones until the counter is written. Under that lock it
subtracts the units of accepted orders whose rows are not in PostgreSQL, which is then exact:
nothing of this product can commit meanwhile, and no reservation can run while the counter is
missing. Write-offs take units off the counter inside their transaction, while holding the
row lock. Units given back (a cancellation, a restock) reach the counter after the commit, and
only if no rebuild ran since the transaction read the product's `stock:epoch`: a rebuild after
the commit has counted them already. A process that dies before that step leaves the counter
under-counting until the reconciler repairs it; it can never offer units that are not there.
The `stock:held` counters are only the reconciler's estimate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import buckets, keys
from db.backends import Backends
from db.state_redis import StateRedis, mget
from db.values import as_text

# The reconciler remembers a drift it saw once for this long, waiting to see it again.
DRIFT_MEMORY_SECONDS = 600


async def read_epochs(redis: StateRedis, product_ids: Sequence[int]) -> dict[int, str]:
    """Each product's rebuild epoch ('' before its first rebuild), read inside a transaction that
    holds the products' stock rows, for a give-back after the commit."""
    pids = list(product_ids)
    raw = await mget(redis, [keys.stock_epoch(p) for p in pids])
    return {p: as_text(v) if v is not None else "" for p, v in zip(pids, raw, strict=True)}


def sale_facts(price_cents: int, currency: str, max_per_customer: int | None) -> tuple[int, str, str]:
    """What the reservation script reads of a product (pinfo:{pid})."""
    return price_cents, currency.strip(), "" if max_per_customer is None else str(max_per_customer)


class StockCounters:
    def __init__(self, backends: Backends) -> None:
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._sessions = backends.sessions

    async def available(self, product_ids: Sequence[int]) -> list[int | None]:
        """Live counters for the given products, one MGET; None for a product that does not exist."""
        if not product_ids:
            return []
        raw = await mget(self._redis, [keys.stock(pid) for pid in product_ids])
        missing = [pid for pid, value in zip(product_ids, raw, strict=True) if value is None]
        rebuilt = await self.rebuild(missing) if missing else {}
        return [
            int(value) if value is not None else rebuilt.get(pid)
            for pid, value in zip(product_ids, raw, strict=True)
        ]

    async def rebuild(self, product_ids: Sequence[int]) -> dict[int, int]:
        result: dict[int, int] = {}
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    text(
                        "SELECT p.id, s.stock, p.price_cents, p.currency, p.max_per_customer, dp.drop_id "
                        "FROM products p JOIN product_stock s ON s.product_id = p.id "
                        "LEFT JOIN drop_products dp ON dp.product_id = p.id AND NOT dp.ended "
                        "WHERE p.id = ANY(:ids) ORDER BY p.id FOR SHARE OF s"
                    ),
                    {"ids": list(product_ids)},
                )
            ).all()
            held = await self._held_outside_postgres(session, [row.id for row in rows])
            for row in rows:
                price, currency, limit = sale_facts(row.price_cents, row.currency, row.max_per_customer)
                result[row.id] = await self._scripts.stock_rebuild(
                    row.id, stock=row.stock, held=held.get(row.id, 0), price_cents=price, currency=currency,
                    limit=limit, drop_id=row.drop_id,
                )
        return result

    async def _held_outside_postgres(self, session: AsyncSession, product_ids: list[int]) -> dict[int, int]:
        """Units of these products held by accepted orders whose rows are not in PostgreSQL.

        Asked while the products' stock rows are share-locked: an order of these products cannot
        commit meanwhile, so "in PostgreSQL or not" is exact, where the `stock:held` counters would lag
        a just-committed batch until its Redis step runs.
        """
        if not product_ids:
            return {}
        wanted = set(product_ids)
        held: dict[int, int] = {}
        for pid, qty in await self._held_by_reservations_under_way(wanted):
            held[pid] = held.get(pid, 0) + qty
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue, _ in keys.all_orders_to_persist():
                pipe.zrange(queue, 0, -1)
            waiting = [as_text(o) for ids in await pipe.execute() for o in ids]
        if not waiting:
            return held
        async with self._redis.pipeline(transaction=False) as pipe:
            for order_id in waiting:
                pipe.hget(keys.order(order_id), "lines")
            raw_lines = await pipe.execute()
        holding: dict[str, list[tuple[int, int]]] = {}
        for order_id, raw in zip(waiting, raw_lines, strict=True):
            if raw:
                lines = [(int(p), int(q)) for p, q, _ in json.loads(raw) if int(p) in wanted]
                if lines:
                    holding[order_id] = lines
        if not holding:
            return held
        persisted = {
            str(r.id)
            for r in await session.execute(
                text("SELECT id FROM orders WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": list(holding)}
            )
        }
        for order_id, lines in holding.items():
            if order_id not in persisted:
                for pid, qty in lines:
                    held[pid] = held.get(pid, 0) + qty
        return held

    async def _held_by_reservations_under_way(self, wanted: set[int]) -> list[tuple[int, int]]:
        """Lines of reservations in steps not committed yet (db.reservation): their units may be off
        the counter already. Counted as held, so a commit after the rebuild sells nothing twice; an
        undo after it gives nothing back (the epoch moved) and leaves the reconciler an under-count."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in range(buckets.count()):
                pipe.zrange(keys.orders_reserving(bucket), 0, -1)
            under_way = [as_text(o) for ids in await pipe.execute() for o in ids]
        if not under_way:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for order_id in under_way:
                pipe.hget(keys.reserving(order_id), "lines")
            notes = await pipe.execute()
        return [(int(p), int(q)) for raw in notes if raw for p, q in json.loads(raw) if int(p) in wanted]

    async def set_sale_facts(self, product_id: int, price_cents: int, currency: str,
                             max_per_customer: int | None) -> None:
        price, cur, limit = sale_facts(price_cents, currency, max_per_customer)
        await self._redis.hset(keys.product_info(product_id), mapping={"price": price, "currency": cur,
                                                                        "limit": limit})

    async def set_initial(self, product_id: int, stock: int) -> None:
        # NX: an order may already have rebuilt the counter from the committed row and reserved from it.
        await self._redis.set(keys.stock(product_id), stock, nx=True)

    async def epochs(self, product_ids: Sequence[int]) -> dict[int, str]:
        return await read_epochs(self._redis, product_ids)

    async def give_back(self, product_id: int, units: int, epoch: str) -> int | None:
        """After a commit returned `units` to product_stock: add them to the counter unless it was
        rebuilt (and so already counted them) since `epoch` was read."""
        return await self._scripts.stock_adjust(product_id, units, epoch)

    async def take_in_transaction(self, product_id: int, delta: int) -> int | None:
        """Take -`delta` units off the counter while the caller's open transaction holds the stock row.

        Before the commit on purpose: if the commit then fails, the counter only under-counts.
        Returns the new counter, or None when it is missing (a later rebuild reads the committed
        row). Raises InvalidInput when units that are held would be written off.
        """
        return await self._scripts.stock_adjust(product_id, delta, None)


async def reconcile(backends: Backends, batch: int = 500, min_gap_seconds: float = 30.0) -> dict[int, int]:
    """Repair counters whose drift from PostgreSQL minus holds is seen twice, `min_gap_seconds` apart.

    Returns {product id: drift repaired}. Drift comes from a transaction that failed to commit
    after its Redis step; a crash between a commit and its Redis step under-counts until the
    next persistence of that order finishes its Redis side.
    """
    repaired: dict[int, int] = {}
    after = 0
    while True:
        async with backends.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    text(
                        "SELECT product_id AS id, stock FROM product_stock WHERE product_id > :after "
                        "ORDER BY product_id LIMIT :batch FOR SHARE"
                    ),
                    {"after": after, "batch": batch},
                )
            ).all()
            for row in rows:
                drift = await backends.scripts.stock_reconcile(
                    row.id, stock=row.stock, drift_memory_seconds=DRIFT_MEMORY_SECONDS,
                    min_gap_ms=int(min_gap_seconds * 1000),
                )
                if drift:
                    repaired[row.id] = drift
        if len(rows) < batch:
            return repaired
        after = rows[-1].id
