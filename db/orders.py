"""Orders: the atomic reservation in Redis and reading orders back, wherever they are."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import buckets, keys
from db.backends import Backends
from db.drop_line import DropLine, customer_shopper
from db.enums import CancelReason, OrderStatus
from db.errors import (
    IdempotencyKeyReused,
    NotYourTurn,
    OrderNotCancellable,
    OrderNotFound,
    ProductNotFound,
    TryAgain,
)
from db.order_lifecycle import cancel_order
from db.order_records import (
    ORDER_COLUMNS,
    OrderLineRecord,
    OrderRecord,
    canonical_order_id,
    fingerprint,
    new_order_id,
)
from db.order_transitions import OrderRef
from db.read_replica import Reads
from db.reservation import reserve_when_free
from db.scripts import (
    AllowanceMissing,
    CheckoutCart,
    OrderRequest,
    PassNeeded,
    PassRefused,
    Replayed,
    ReservationUndone,
    Reserved,
    ReserveLine,
    StockMissing,
)
from db.stock import StockCounters
from db.values import as_text

IDEMPOTENCY_TTL_SECONDS = 48 * 3600
ALLOWANCE_TTL_SECONDS = 30 * 86400
# While set, a persistence job is queued: a burst of orders enqueues one job, not one each.
PERSIST_FLAG_MS = 5000
# totalCents is a GraphQL Int: a larger total is refused before any unit is reserved.
MAX_TOTAL_CENTS = 2**31 - 1


@dataclass(frozen=True)
class Reservation:
    order: OrderRecord
    enqueue_persistence: bool  # no persistence job was pending: the caller enqueues one

    @property
    def bucket(self) -> int:
        """The bucket whose to-persist queue holds the order (db.buckets)."""
        return buckets.of_customer(self.order.customer_id)


class Orders:
    """Buying, cancelling and reading orders, wherever they are (Redis first, then PostgreSQL)."""

    def __init__(
        self, backends: Backends, stock: StockCounters, payment_ttl_seconds: int, reads: Reads | None = None,
        line: DropLine | None = None, in_steps: bool = False,
    ) -> None:
        self._backends = backends
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._sessions = backends.sessions
        self._stock = stock
        self._payment_ttl = payment_ttl_seconds
        # Order history pages may come from a read replica (db.read_replica).
        self._reads = reads or Reads(backends.sessions, None, backends.redis)
        # Products of a live drop are sold only to shoppers holding a pass (db.drop_line).
        self._line = line
        # On a cluster an order's products and its customer are on different shards: the reservation
        # runs in steps (db.reservation) instead of one script call.
        self._in_steps = in_steps

    # Allowances ------------------------------------------------------------------------------

    async def load_allowance(self, customer_id: int) -> None:
        """Put the customer's units bought (orders not cancelled) into Redis, if not there yet.

        Orders not yet persisted are read first and PostgreSQL second: an order persisted in
        between is then counted twice (stricter), never missed.
        """
        if await self._redis.exists(keys.allowance(customer_id)):
            return
        units: dict[int, int] = {}
        for record in await self._inflight_records(customer_id):
            if record.status != OrderStatus.CANCELLED:
                for line in record.lines:
                    units[line.product_id] = units.get(line.product_id, 0) + line.quantity
        async with self._sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT i.product_id, sum(i.quantity) AS units FROM order_items i JOIN orders o "
                    "ON o.customer_id = i.customer_id AND o.id = i.order_id "
                    "WHERE i.customer_id = :cid AND o.status <> 'CANCELLED' GROUP BY i.product_id"
                ),
                {"cid": customer_id},
            )
            for row in rows:
                units[row.product_id] = units.get(row.product_id, 0) + int(row.units)
        await self._scripts.allowance_load(customer_id, units, ALLOWANCE_TTL_SECONDS)

    # Buying ----------------------------------------------------------------------------------

    async def replayed(self, customer_id: int, idempotency_key: str, request_fingerprint: str) -> OrderRecord | None:
        """The order an idempotency key already made, if any (checkout asks before reading the cart)."""
        raw = await self._redis.get(keys.idempotency(customer_id, idempotency_key))
        if raw is None:
            return None
        order_id, _, stored = as_text(raw).partition("|")
        if stored != request_fingerprint:
            raise IdempotencyKeyReused()
        return await self.get(order_id, customer_id)

    async def reserve(
        self,
        customer_id: int,
        lines: Sequence[tuple[int, int]],
        idempotency_key: str,
        cart: CheckoutCart | None = None,
        shoppers: Sequence[str] = (),
    ) -> Reservation:
        """Reserve all lines or none in one Lua script (db/lua/order_reserve.lua), loading what
        Redis lost (allowance, counters) and trying again.

        A line of a live drop's product needs a pass of one of `shoppers` (the customer by default;
        the request's guest session too): the script names the drop, the pass is taken and the
        script runs again. A pass is spent when the order is made and given back otherwise, so a
        refusal (OUT_OF_STOCK, a limit) leaves the shopper their turn.
        """
        order_id = new_order_id(customer_id)
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + self._payment_ttl * 1000
        holders = list(shoppers) or [customer_shopper(customer_id)]
        taken: dict[int, str] = {}
        made = False
        reserve: Callable[[OrderRequest], Awaitable[Reserved | Replayed]] = self._scripts.order_reserve
        if self._in_steps:
            reserve = functools.partial(reserve_when_free, self._scripts)
        order = OrderRequest(
            customer_id=customer_id, order_id=order_id, idempotency_key=idempotency_key,
            fingerprint=fingerprint(lines, checkout=cart is not None),
            lines=[ReserveLine(pid, qty) for pid, qty in lines], now_ms=now_ms, expires_ms=expires_ms,
            idempotency_ttl_seconds=IDEMPOTENCY_TTL_SECONDS, allowance_ttl_seconds=ALLOWANCE_TTL_SECONDS,
            persist_flag_ms=PERSIST_FLAG_MS, max_total_cents=MAX_TOTAL_CENTS, cart=cart,
        )
        try:
            for attempt in range(8):
                if attempt and self._in_steps:
                    # A reservation in steps that stopped was undone under its id: the next is a new one.
                    order_id = new_order_id(customer_id)
                try:
                    reply = await reserve(replace(order, order_id=order_id, drop_passes=sorted(taken)))
                except ReservationUndone:
                    continue
                except AllowanceMissing:
                    await self.load_allowance(customer_id)
                    continue
                except StockMissing as missing:
                    if missing.product_id not in await self._stock.rebuild([missing.product_id]):
                        raise ProductNotFound(f"no product with id {missing.product_id}", field="lines",
                                              product_id=missing.product_id) from None
                    continue
                except PassNeeded as needed:
                    await self._take_pass(needed, holders, taken)
                    continue
                if isinstance(reply, Replayed):
                    existing = await self.get(reply.order_id, customer_id)
                    if existing is None:
                        raise RuntimeError("idempotency key points at an order that cannot be found")
                    return Reservation(existing, enqueue_persistence=False)
                made = True
                record = OrderRecord.reserved(
                    order_id=order_id, customer_id=customer_id, lines=reply.lines, total_cents=reply.total_cents,
                    currency=reply.currency, created_ms=now_ms, expires_ms=expires_ms,
                    idempotency_key=idempotency_key,
                )
                return Reservation(record, enqueue_persistence=reply.enqueue_persistence)
            if self._in_steps:
                raise TryAgain("the reservation did not finish in time and was undone; send it again")
            raise RuntimeError("reservation kept finding missing state in Redis")
        finally:
            if taken:
                assert self._line is not None
                for drop_id, holder in taken.items():
                    if made:
                        await self._line.spend_pass(drop_id, holder, order_id)
                    else:
                        await self._line.give_back_pass(drop_id, holder)

    async def _take_pass(self, needed: PassNeeded, holders: Sequence[str], taken: dict[int, str]) -> None:
        if self._line is None or needed.drop_id in taken:
            raise RuntimeError(f"product {needed.product_id} asks for a pass of drop {needed.drop_id}")
        got = await self._line.take_pass(needed.drop_id, holders)
        if got is None:
            # The drop ended (or never committed): its products sell as any other from now on.
            await self._line.forget_drop(needed.product_id, needed.drop_id)
            return
        if isinstance(got, PassRefused):
            raise NotYourTurn(_refusal_message(needed.drop_id, got), product_id=needed.product_id,
                              position=got.position)
        taken[needed.drop_id] = got

    # Cancelling ------------------------------------------------------------------------------

    async def cancel(self, order_id: str, by_customer_id: int, *, staff: bool = False) -> OrderRecord:
        """Cancel a PENDING order of the caller's (any customer's for staff), releasing its units once,
        and return it as it is now."""
        order = await self.get(order_id, None if staff else by_customer_id)
        if order is None:
            raise OrderNotFound()
        reason = CancelReason.CUSTOMER if order.customer_id == by_customer_id else CancelReason.STAFF
        if order.status != OrderStatus.PENDING:
            raise OrderNotCancellable(f"the order is {order.status}; only a PENDING order can be cancelled")
        if not await cancel_order(self._backends, OrderRef(order.customer_id, order.id), reason):
            raise OrderNotCancellable("the order was paid or cancelled meanwhile")
        cancelled = await self.get(order.id, order.customer_id)
        assert cancelled is not None
        return cancelled

    # Reading ---------------------------------------------------------------------------------

    async def _inflight_records(self, customer_id: int) -> list[OrderRecord]:
        ids = [as_text(i) for i in await self._redis.smembers(keys.orders_inflight(customer_id))]
        return [r for r in await self._redis_records(ids) if r is not None and not r.persisted]

    async def _redis_records(self, order_ids: Sequence[str]) -> list[OrderRecord | None]:
        return [OrderRecord.from_hash(raw) if raw else None for raw in await self._scripts.orders_read(order_ids)]

    async def get(self, order_id: str, customer_id: int | None) -> OrderRecord | None:
        """An order by id (any spelling but the canonical one finds nothing); `customer_id` None means
        any customer's (staff)."""
        canonical = canonical_order_id(order_id)
        if canonical is None:
            return None
        order_id = canonical
        found = await self._from_postgres(order_id=order_id, customer_id=customer_id)
        if found:
            return found[0]
        records = await self._redis_records([order_id])
        record = records[0] if records else None
        if record is None or (customer_id is not None and record.customer_id != customer_id):
            return None
        return record

    async def list_for_customer(
        self, customer_id: int, first: int, before: str | None
    ) -> tuple[list[OrderRecord], bool]:
        """The customer's orders, newest first (order ids sort by time), and whether more follow.

        Redis first, PostgreSQL second: an order persisted between the two reads is then in both
        (and kept once), where the other order would find it in neither. The PostgreSQL part may
        come from a read replica that has replayed the customer's last write.
        """
        waiting = await self._inflight_records(customer_id)

        async def page(session: AsyncSession) -> list[OrderRecord]:
            return await _select_orders(session, customer_id=customer_id, before=before, limit=first + 1)

        persisted = await self._reads.run(page, customer_id=customer_id)
        seen = {r.id for r in persisted}
        inflight = [r for r in waiting if r.id not in seen and (before is None or r.id < before)]
        merged = sorted([*persisted, *inflight], key=lambda r: r.id, reverse=True)
        return merged[:first], len(merged) > first

    async def _from_postgres(self, *, order_id: str, customer_id: int | None) -> list[OrderRecord]:
        async with self._sessions() as session:
            return await _select_orders(session, order_id=order_id, customer_id=customer_id)


def _refusal_message(drop_id: int, refused: PassRefused) -> str:
    return {
        "WAITING": f"you are number {refused.position} in line for drop {drop_id}; wait for your turn",
        "NOT_STARTED": f"drop {drop_id} has not started; you are in line and places are drawn at the start",
        "NOT_IN_LINE": f"this product is sold through drop {drop_id}: join its line first (joinDrop)",
        "IN_USE": f"your pass for drop {drop_id} is being used by another order right now",
        "USED": f"your pass for drop {drop_id} was used for an order already",
        "EXPIRED": f"your pass for drop {drop_id} ran out before it was used",
    }.get(refused.why, f"not your turn in drop {drop_id}")


async def _select_orders(
    session: AsyncSession,
    *,
    order_id: str | None = None,
    customer_id: int | None = None,
    before: str | None = None,
    limit: int = 1,
) -> list[OrderRecord]:
    clauses, params = [], {"limit": limit}
    if order_id is not None:
        clauses.append("id = CAST(:oid AS uuid)")
        params["oid"] = order_id  # type: ignore[assignment]
    if customer_id is not None:
        clauses.append("customer_id = :cid")
        params["cid"] = customer_id
    if before is not None:
        clauses.append("id < CAST(:before AS uuid)")
        params["before"] = before  # type: ignore[assignment]
    rows = (
        await session.execute(
            text(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)} "
                "ORDER BY id DESC LIMIT :limit"
            ),
            params,
        )
    ).all()
    if not rows:
        return []
    items = await session.execute(
        text(
            "SELECT order_id, product_id, quantity, unit_price_cents FROM order_items "
            "WHERE customer_id = ANY(:cids) AND order_id = ANY(:oids) ORDER BY product_id"
        ),
        {"cids": list({r.customer_id for r in rows}), "oids": [r.id for r in rows]},
    )
    lines: dict[uuid.UUID, list[OrderLineRecord]] = {}
    for item in items:
        lines.setdefault(item.order_id, []).append(
            OrderLineRecord(item.product_id, item.quantity, item.unit_price_cents)
        )
    return [OrderRecord.from_row(r, lines.get(r.id, [])) for r in rows]
