"""Moving accepted orders from Redis into PostgreSQL in batches, safely more than once.

One transaction per batch: a multi-row INSERT of orders with ON CONFLICT DO NOTHING, the items
of the rows it actually inserted, and `product_stock` decremented for those rows only (one row
per product, one UPDATE per batch). After
commit, a Lua script per order drops its stock holds and its to-persist entry, guarded by the
record's `persisted` flag, so a second run, a second worker or a crash between commit and the
script changes nothing more: the next run finds the rows there and only finishes the Redis side.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import keys
from db.backends import Backends
from db.enums import OrderStatus
from db.order_records import OrderRecord
from db.order_transitions import lock_products, publish_changes
from db.payments import apply_waiting_for_orders
from db.read_replica import mark_written
from db.scripts import PersistedOrder
from db.state_redis import StateRedis
from db.values import as_text

log = logging.getLogger("rushcart.persistence")

# A persisted order's Redis record stays this long as a status cache for subscriptions.
STATUS_CACHE_SECONDS = 86400


async def persist_orders(backends: Backends, order_ids: Sequence[str]) -> int:
    """Persist the given orders (ids from one bucket's orders:topersist), applying payment events that arrived
    before them in the same transaction, so an order paid early is never expired afterwards.
    Returns how many rows this call inserted (the others were there already)."""
    records, missing = await read_records(backends, order_ids)
    if missing:
        # An id without a record cannot be persisted; it only happens after Redis lost data.
        log.error("orders %s are queued for persistence but have no record in Redis; dropping the ids", missing)
        for oid in missing:
            await backends.redis.zrem(keys.orders_to_persist_of(oid), oid)
    if not records:
        return 0

    orders = [
        {
            "customer_id": r.customer_id,
            "id": r.id,
            "status": r.status,
            "cancel_reason": r.cancel_reason,
            "total_cents": r.total_cents,
            "currency": r.currency,
            "idempotency_key": r.idempotency_key,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(),
        }
        for r in records
    ]
    paid: list[Any] = []
    released: list[Any] = []
    async with backends.sessions() as session, session.begin():
        inserted_rows = (
            await session.execute(
                text(
                    "INSERT INTO orders (customer_id, id, status, cancel_reason, total_cents, currency, "
                    "idempotency_key, created_at, expires_at) "
                    "SELECT customer_id, id, status, cancel_reason, total_cents, currency, idempotency_key, "
                    "created_at, expires_at FROM jsonb_to_recordset(CAST(:orders AS jsonb)) AS o("
                    "customer_id bigint, id uuid, status text, cancel_reason text, total_cents bigint, "
                    "currency text, idempotency_key text, created_at timestamptz, expires_at timestamptz) "
                    "ON CONFLICT DO NOTHING RETURNING id"
                ),
                {"orders": json.dumps(orders)},
            )
        ).all()
        inserted_ids = {str(row.id) for row in inserted_rows}
        inserted = [r for r in records if r.id in inserted_ids]
        if inserted:
            # Lock every product's stock row FOR UPDATE (in id order) before anything else of the
            # products: batches, cancels and restocks meet there first, in one order.
            await lock_products(session, {line.product_id for r in inserted for line in r.lines})
            items = [
                {"customer_id": r.customer_id, "order_id": r.id, "product_id": line.product_id,
                 "quantity": line.quantity, "unit_price_cents": line.unit_price_cents}
                for r in inserted
                for line in r.lines
            ]
            await session.execute(
                text(
                    "INSERT INTO order_items (customer_id, order_id, product_id, quantity, unit_price_cents) "
                    "SELECT customer_id, order_id, product_id, quantity, unit_price_cents "
                    "FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS i(customer_id bigint, order_id uuid, "
                    "product_id bigint, quantity int, unit_price_cents int)"
                ),
                {"items": json.dumps(items)},
            )
            sold: dict[int, int] = defaultdict(int)
            for r in inserted:
                if r.status != OrderStatus.CANCELLED:
                    for line in r.lines:
                        sold[line.product_id] += line.quantity
            await decrement_stock(session, sold)
            paid, released = await apply_waiting_for_orders(backends, session, [r.id for r in inserted])

    # Before the Redis copies retire: from here on the customers' history needs these rows.
    await mark_written(backends, [r.customer_id for r in records])
    await finish_in_redis(backends, records)
    await publish_changes(backends, paid, released)
    return len(inserted)


async def read_records(backends: Backends, order_ids: Sequence[str]) -> tuple[list[OrderRecord], list[str]]:
    """The orders' records from Redis, one reply per bucket among them (a script call stays on one
    slot), in the order given; and the ids that have none."""
    by_queue: dict[str, list[str]] = {}
    for oid in order_ids:
        by_queue.setdefault(keys.orders_to_persist_of(oid), []).append(oid)
    found: dict[str, dict[str, str] | None] = {}
    for ids in by_queue.values():
        found.update(zip(ids, await backends.scripts.orders_read(ids), strict=True))
    raws = [found[oid] for oid in order_ids]
    records, missing = [], []
    for oid, raw in zip(order_ids, raws, strict=True):
        if raw:
            records.append(OrderRecord.from_hash(raw))
        else:
            missing.append(oid)
    return records, missing


async def finish_in_redis(backends: Backends, records: Sequence[OrderRecord]) -> int:
    """After the commit: drop the orders' holds and to-persist entries, once each (a second call,
    or one after a crash, changes nothing). Returns how many this call finished."""
    return await backends.scripts.orders_persisted(
        [PersistedOrder(r.id, r.customer_id, r.units) for r in records], STATUS_CACHE_SECONDS
    )


async def decrement_stock(session: AsyncSession, sold: dict[int, int]) -> None:
    """Take sold units off product_stock; the caller holds the rows (lock_products)."""
    if not sold:
        return
    pids = sorted(sold)
    await session.execute(
        text(
            "UPDATE product_stock ps SET stock = ps.stock - s.qty FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:qtys AS int[])) AS s(id, qty) WHERE ps.product_id = s.id"
        ),
        {"ids": pids, "qtys": [sold[p] for p in pids]},
    )


async def _take(redis: StateRedis, queues: Sequence[str], limit: int,
                older_than_ms: int | None) -> list[list[tuple[float, str]]]:
    """Up to `limit` (score, id) of each queue, oldest first, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrangebyscore(queue, "-inf", "+inf" if older_than_ms is None else older_than_ms, start=0, num=limit,
                               withscores=True)
        replies = await pipe.execute()
    return [[(float(score), as_text(oid)) for oid, score in reply] for reply in replies]


async def persist_pending(
    backends: Backends,
    queues: Sequence[str],
    batch_size: int,
    older_than_ms: int | None = None,
    before_batch: Callable[[], Awaitable[Any]] | None = None,
) -> int:
    """Drain to-persist queues (buckets' orders:topersist) in batches of up to `batch_size` over all
    of them; returns orders inserted.

    A batch takes a fair share of each queue, then fills up from the fuller ones, so a backlog
    spread over many buckets still makes large batches (one PostgreSQL transaction each), and a
    busy bucket cannot starve the others. Its Redis steps run one call per bucket, on one slot
    each. Ids go to PostgreSQL by creation, then id, as every persistence batch does, so batches
    that meet on the same orders wait for each other instead of deadlocking.
    `older_than_ms` limits the run to ids queued before that time (the sweeper's view);
    `before_batch` runs before each batch (the caller renews its locks there).
    """
    total = 0
    redis = backends.redis
    share = max(1, batch_size // max(1, len(queues)))
    while True:
        if before_batch is not None:
            await before_batch()
        shares = await _take(redis, queues, share, older_than_ms)
        taken = sorted(entry for entries in shares for entry in entries)[:batch_size]
        if len(taken) < batch_size and any(len(entries) == share for entries in shares):
            # Some queue may hold more than its share: fill the batch with the oldest of the rest.
            seen = {oid for _, oid in taken}
            rest = [entry for entries in await _take(redis, queues, batch_size, older_than_ms)
                    for entry in entries if entry[1] not in seen]
            taken += sorted(rest)[:batch_size - len(taken)]
        if not taken:
            return total
        total += await persist_orders(backends, [oid for _, oid in sorted(taken)])
        if len(taken) < batch_size:
            return total


async def persist_every_queue(backends: Backends, batch_size: int) -> int:
    """Drain every bucket's queue in turn without the drainers' locks (one process alone, as a
    benchmark or a maintenance command); returns orders inserted."""
    return await persist_pending(backends, [queue for queue, _ in keys.all_orders_to_persist()], batch_size)


async def backlog(redis: StateRedis) -> int:
    """Accepted orders not yet in PostgreSQL, over every bucket."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue, _ in keys.all_orders_to_persist():
            pipe.zcard(queue)
        return sum(int(n) for n in await pipe.execute())


async def ensure_persisted(backends: Backends, order_id: str) -> None:
    """Persist one order now if it is still waiting in Redis, so a transition can act on its row."""
    if await backends.redis.zscore(keys.orders_to_persist_of(order_id), order_id) is not None:
        await persist_orders(backends, [order_id])
