"""Single-winner status changes of persisted orders: PENDING -> CANCELLED or PENDING -> PAID.

Each change is one conditional UPDATE ... WHERE status = 'PENDING'. Only the caller whose
UPDATE matched a row goes on: it returns the units to `product_stock` in the same transaction
and reads the products' rebuild epochs while it holds their stock rows. After the commit, and only
then, it gives the units back to the Redis counters (unless a rebuild already counted them, see
db.stock) and the customer's allowance, and publishes the change. A sweeper racing a cancel, or
a payment racing expiry, therefore releases stock exactly once; the loser sees zero rows and does
nothing; a process that dies before its commit releases nothing.

The winner's transaction also writes what the Redis step will do into `status_mirrors` (an outbox,
migration 0005); the row goes once that step is done. A commit whose reply was lost, or a process
that died between its commit and the Redis step, leaves the row, and `mirror_owed` (a periodic
job) does the step a few seconds later: it is idempotent, so doing it twice gives nothing back twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db.backends import Backends
from db.enums import CancelReason, OrderStatus
from db.read_replica import mark_written
from db.replication import NotReplicated
from db.scripts import ReleaseLine
from db.state_redis import UNREACHABLE
from db.stock import read_epochs

log = logging.getLogger("rushcart.transitions")

# How long a committed change waits for Redis to come back before its Redis step is given up.
MIRROR_RETRY_SECONDS = 30.0
# An outbox row older than this lost its Redis step (the live path takes milliseconds); the sweeper redoes it.
MIRROR_SWEEP_AGE_SECONDS = 5
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


async def publish_changes(
    backends: Backends,
    paid: Sequence[tuple[OrderRef, int | None]] = (),
    released: Sequence[Released] = (),
    concurrency: int = 1,
) -> None:
    """After the commit: note the customers' writes for read-your-writes (db.read_replica), mirror
    each change into Redis and publish it (`concurrency` at a time), then drop their outbox rows.

    A change whose Redis step fails keeps its row (the error goes to the caller); a row that cannot
    be dropped (PostgreSQL away again) is only redone by the sweeper, which is harmless."""
    await mark_written(backends, [ref.customer_id for ref, _ in paid] + [item.ref.customer_id for item in released])
    gate = asyncio.Semaphore(concurrency)

    async def one(ref: OrderRef, status: OrderStatus, reason: CancelReason | None = None,
                  lines: Sequence[ReleaseLine] = (), at_ms: int | None = None) -> None:
        async with gate:
            await _mirror_status(backends, ref, status, reason, lines, at_ms)

    results = await asyncio.gather(
        *(one(ref, OrderStatus.PAID, at_ms=at_ms) for ref, at_ms in paid),
        *(one(item.ref, OrderStatus.CANCELLED, item.reason, item.lines, item.at_ms) for item in released),
        return_exceptions=True,
    )
    done = [(ref, OrderStatus.PAID) for ref, _ in paid] + [(item.ref, OrderStatus.CANCELLED) for item in released]
    mirrored = [change for change, result in zip(done, results, strict=True) if not isinstance(result, BaseException)]
    try:
        await _settle(backends, mirrored)
    except (SQLAlchemyError, OSError):
        log.warning("could not drop %d mirrored changes from the outbox; the sweeper will redo them",
                    len(mirrored), exc_info=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def publish_released(backends: Backends, released: Sequence[Released]) -> None:
    await publish_changes(backends, released=released)


async def owe_paid(session: AsyncSession, paid: Sequence[tuple[OrderRef, int]]) -> None:
    """Inside a payment's transaction: the outbox rows of the orders it made PAID."""
    await _owe(session, [{"customer_id": ref.customer_id, "order_id": ref.order_id, "status": "PAID",
                          "cancel_reason": None, "at_ms": at_ms, "lines": []} for ref, at_ms in paid])


async def _owe(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    await session.execute(
        text(
            "INSERT INTO status_mirrors (customer_id, order_id, status, cancel_reason, at_ms, lines) "
            "SELECT customer_id, order_id, status, cancel_reason, at_ms, lines "
            "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS m(customer_id bigint, order_id uuid, status text, "
            "cancel_reason text, at_ms bigint, lines jsonb) ON CONFLICT DO NOTHING"
        ),
        {"rows": json.dumps(rows)},
    )


async def _settle(backends: Backends, changes: Sequence[tuple[OrderRef, OrderStatus]]) -> None:
    if not changes:
        return
    async with backends.sessions() as session, session.begin():
        await session.execute(
            text(
                "DELETE FROM status_mirrors m USING unnest(CAST(:cids AS bigint[]), CAST(:oids AS uuid[]), "
                "CAST(:statuses AS text[])) AS d(cid, oid, status) "
                "WHERE m.customer_id = d.cid AND m.order_id = d.oid AND m.status = d.status"
            ),
            {"cids": [ref.customer_id for ref, _ in changes], "oids": [ref.order_id for ref, _ in changes],
             "statuses": [status.value for _, status in changes]},
        )


async def mirror_owed(backends: Backends, older_than_seconds: float = MIRROR_SWEEP_AGE_SECONDS,
                      batch: int = 500) -> int:
    """Redo the Redis step of committed changes whose outbox row is older than `older_than_seconds`;
    returns how many were redone."""
    async with backends.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT customer_id, order_id, status, cancel_reason, at_ms, lines FROM status_mirrors "
                    "WHERE created_at < now() - make_interval(secs => :age) ORDER BY created_at LIMIT :batch"
                ),
                {"age": older_than_seconds, "batch": batch},
            )
        ).all()
    paid = [(OrderRef(r.customer_id, str(r.order_id)), int(r.at_ms)) for r in rows if r.status == OrderStatus.PAID]
    released = [
        Released(OrderRef(r.customer_id, str(r.order_id)), CancelReason(r.cancel_reason),
                 [ReleaseLine(int(pid), int(qty), str(epoch)) for pid, qty, epoch in r.lines], int(r.at_ms))
        for r in rows if r.status == OrderStatus.CANCELLED
    ]
    await publish_changes(backends, paid, released)
    return len(rows)


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
        except (*UNREACHABLE, NotReplicated):
            if time.monotonic() + delay > deadline:
                raise
            log.warning("Redis unreachable while mirroring order %s; retrying in %.2fs", ref.order_id, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


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
    released = [
        Released(ref, reason, [ReleaseLine(p, q, epochs[p]) for p, q in per_order[ref.order_id]],
                 at_ms[ref.order_id])
        for ref in winners
    ]
    await _owe(session, [
        {"customer_id": item.ref.customer_id, "order_id": item.ref.order_id, "status": "CANCELLED",
         "cancel_reason": item.reason.value, "at_ms": item.at_ms,
         "lines": [[line.product_id, line.quantity, line.epoch] for line in item.lines]}
        for item in released
    ])
    return released


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
