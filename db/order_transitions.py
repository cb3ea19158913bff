"""Single-winner status changes of persisted orders: PENDING -> CANCELLED or PENDING -> PAID.

Each change is one conditional UPDATE ... WHERE status = 'PENDING'. Only the caller whose
UPDATE matched a row goes on: it returns the units to `product_stock` in the same transaction
and reads the products' rebuild epochs while it holds their stock rows. After the commit, and only
then, it gives the units back to the Redis counters (unless a rebuild already counted them, see
db.stock) and the customer's allowance, and publishes the change. A sweeper racing a cancel, or
a payment racing expiry, therefore releases stock exactly once; the loser sees zero rows and does
nothing; a process that dies before its commit releases nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.backends import Backends
from db.enums import CancelReason, OrderStatus
from db.read_replica import mark_written
from db.scripts import ReleaseLine
from db.stock import read_epochs

log = logging.getLogger("rushcart.transitions")

# How long a committed change waits for Redis to come back before its Redis step is given up.
MIRROR_RETRY_SECONDS = 30.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OrderRef:
    customer_id: int
    order_id: str


@dataclass(frozen=True)
class Released:
    """A cancellation committed in PostgreSQL, waiting to be mirrored into Redis."""

    ref: OrderRef
    reason: CancelReason
    lines: list[ReleaseLine]
    at_ms: int | None = None  # cancelled_at as stored


# Stored change times are kept to the millisecond, the unit the Redis record and the events carry,
# so a live event's `at` equals the stored one.
STORED_NOW = "date_trunc('milliseconds', now())"


def epoch_ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


async def publish_status(
    backends: Backends,
    ref: OrderRef,
    status: OrderStatus,
    reason: CancelReason | None = None,
    released: Sequence[ReleaseLine] = (),
    at_ms: int | None = None,
) -> None:
    """After the commit: note the customer's write for read-your-writes (db.read_replica), then mirror
    the change into Redis and publish it."""
    await mark_written(backends, [ref.customer_id])
    await _mirror_status(backends, ref, status, reason, released, at_ms)


async def _mirror_status(
    backends: Backends,
    ref: OrderRef,
    status: OrderStatus,
    reason: CancelReason | None = None,
    released: Sequence[ReleaseLine] = (),
    at_ms: int | None = None,
) -> None:
    """Mirror a committed change into Redis (see db/lua/order_status.lua) and publish it, stamped with
    the time stored in PostgreSQL (`at_ms`).

    The change is already final in PostgreSQL, so a Redis that is away for a moment (a restart, a
    failover) is waited for rather than given up on: the step is idempotent, and losing it would
    leave units and the buyer's allowance held until the reconciler noticed."""
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    deadline = time.monotonic() + MIRROR_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            await backends.scripts.order_status(
                order_id=ref.order_id, customer_id=ref.customer_id, status=status, cancel_reason=reason,
                at_ms=at_ms, released=released,
            )
            return
        except (ConnectionError, TimeoutError, BusyLoadingError):
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Redis unreachable while mirroring order %s; retrying in %.2fs", ref.order_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def publish_released(backends: Backends, released: Sequence[Released]) -> None:
    await mark_written(backends, [item.ref.customer_id for item in released])
    for item in released:
        await _mirror_status(backends, item.ref, OrderStatus.CANCELLED, item.reason, item.lines, item.at_ms)


async def lock_products(session: AsyncSession, product_ids: set[int]) -> None:
    """FOR UPDATE on the products' stock rows, always in id order, so concurrent writers cannot
    deadlock, and a counter rebuild (FOR SHARE on the same rows) waits for the commit."""
    await session.execute(
        text("SELECT product_id FROM product_stock WHERE product_id = ANY(:ids) ORDER BY product_id FOR UPDATE"),
        {"ids": sorted(product_ids)},
    )


async def cancel_in_session(
    backends: Backends, session: AsyncSession, refs: Sequence[OrderRef], reason: CancelReason
) -> list[Released]:
    """Cancel those of `refs` that are still PENDING, inside the caller's transaction. The caller
    passes what this returns to publish_released after its commit."""
    if not refs:
        return []
    won = (
        await session.execute(
            text(
                f"UPDATE orders o SET status = 'CANCELLED', cancel_reason = :reason, cancelled_at = {STORED_NOW} "
                "FROM unnest(CAST(:cids AS bigint[]), CAST(:oids AS uuid[])) AS t(cid, oid) "
                "WHERE o.customer_id = t.cid AND o.id = t.oid AND o.status = 'PENDING' "
                "RETURNING o.customer_id, o.id, o.cancelled_at"
            ),
            {"reason": CancelReason(reason).value, "cids": [r.customer_id for r in refs],
             "oids": [r.order_id for r in refs]},
        )
    ).all()
    if not won:
        return []
    winners = [OrderRef(row.customer_id, str(row.id)) for row in won]
    at_ms = {str(row.id): epoch_ms(row.cancelled_at) for row in won}
    items = await session.execute(
        text(
            "SELECT customer_id, order_id, product_id, quantity FROM order_items "
            "WHERE customer_id = ANY(:cids) AND order_id = ANY(:oids)"
        ),
        {"cids": list({w.customer_id for w in winners}), "oids": [uuid.UUID(w.order_id) for w in winners]},
    )
    per_order: dict[str, list[tuple[int, int]]] = defaultdict(list)
    returned: dict[int, int] = defaultdict(int)
    for item in items:
        per_order[str(item.order_id)].append((item.product_id, item.quantity))
        returned[item.product_id] += item.quantity
    pids = sorted(returned)
    await lock_products(session, set(pids))
    await session.execute(
        text(
            "UPDATE product_stock ps SET stock = ps.stock + s.qty FROM unnest(CAST(:ids AS bigint[]), "
            "CAST(:qtys AS int[])) AS s(id, qty) WHERE ps.product_id = s.id"
        ),
        {"ids": pids, "qtys": [returned[p] for p in pids]},
    )
    epochs = await read_epochs(backends.redis, pids)
    return [
        Released(ref, reason, [ReleaseLine(p, q, epochs[p]) for p, q in per_order[ref.order_id]],
                 at_ms[ref.order_id])
        for ref in winners
    ]


async def cancel_orders(backends: Backends, refs: Sequence[OrderRef], reason: CancelReason) -> list[OrderRef]:
    """Cancel persisted orders still PENDING; returns those this call won (and released)."""
    async with backends.sessions() as session, session.begin():
        released = await cancel_in_session(backends, session, refs, reason)
    await publish_released(backends, released)
    return [item.ref for item in released]


async def expire_due(backends: Backends, batch: int = 500) -> int:
    """Cancel PENDING orders past their expiry (reason EXPIRED); returns how many this call won."""
    total = 0
    while True:
        async with backends.sessions() as session:
            due = (
                await session.execute(
                    text(
                        "SELECT customer_id, id FROM orders WHERE status = 'PENDING' AND expires_at <= now() "
                        "ORDER BY expires_at LIMIT :batch"
                    ),
                    {"batch": batch},
                )
            ).all()
        if not due:
            return total
        won = await cancel_orders(backends, [OrderRef(r.customer_id, str(r.id)) for r in due], CancelReason.EXPIRED)
        total += len(won)
        if len(due) < batch:
            return total
