"""Orders: the atomic reservation in Redis and reading orders back, wherever they are."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid6 import uuid7

from db import keys
from db.errors import (
    IdempotencyKeyReused,
    InvalidInput,
    OutOfStock,
    ProductNotFound,
    PurchaseLimitExceeded,
)
from db.stock import StockCounters
from db.values import as_text

IDEMPOTENCY_TTL_SECONDS = 48 * 3600
ALLOWANCE_TTL_SECONDS = 30 * 86400
STATUS_CACHE_SECONDS = 86400


def new_order_id() -> str:
    """UUIDv7: sorts by creation time; 74 random bits keep processes and restarts from colliding."""
    return str(uuid7())


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value not in (None, "", b"") else None


@dataclass(frozen=True)
class OrderLineRecord:
    product_id: int
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderRecord:
    id: str
    customer_id: int
    status: str
    cancel_reason: str | None
    needs_refund: bool
    lines: list[OrderLineRecord]
    total_cents: int
    currency: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    cancelled_at: datetime | None
    persisted: bool
    idempotency_key: str = ""

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> OrderRecord:
        h = {as_text(k): as_text(v) for k, v in raw.items()}
        created = _ms(h["created_ms"])
        expires = _ms(h["expires_ms"])
        assert created is not None and expires is not None
        return cls(
            id=h["id"],
            customer_id=int(h["customer_id"]),
            status=h["status"],
            cancel_reason=h.get("cancel_reason") or None,
            needs_refund=False,
            lines=[OrderLineRecord(int(p), int(q), int(u)) for p, q, u in json.loads(h["lines"])],
            total_cents=int(h["total_cents"]),
            currency=h["currency"],
            created_at=created,
            expires_at=expires,
            paid_at=_ms(h.get("paid_ms")),
            cancelled_at=_ms(h.get("cancelled_ms")),
            persisted=h.get("persisted") == "1",
            idempotency_key=h.get("idem_key", "").split(":", 2)[-1],
        )


@dataclass(frozen=True)
class Reservation:
    order: OrderRecord
    replayed: bool
    enqueue_persistence: bool


@dataclass(frozen=True)
class CartCheckout:
    """Checkout passes the cart it read, so the script can refuse if the cart changed since."""

    owner: str
    version: int
    ttl_seconds: int


def fingerprint(lines: Sequence[tuple[int, int]], checkout: bool) -> str:
    if checkout:
        return "checkout"
    return "lines:" + ",".join(f"{pid}x{qty}" for pid, qty in sorted(lines))


ORDER_COLUMNS = (
    "customer_id, id, status, cancel_reason, needs_refund, total_cents, currency, idempotency_key, "
    "created_at, expires_at, paid_at, cancelled_at"
)


class Orders:
    def __init__(
        self,
        redis: Any,
        scripts: Any,
        sessions: async_sessionmaker[AsyncSession],
        stock: StockCounters,
        payment_ttl_seconds: int,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._sessions = sessions
        self._stock = stock
        self._payment_ttl = payment_ttl_seconds

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
            if record.status != "CANCELLED":
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
        args: list[Any] = [ALLOWANCE_TTL_SECONDS]
        for pid, qty in units.items():
            args += [pid, qty]
        await self._scripts.allowance_load(keys=[keys.allowance(customer_id)], args=args)

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
        cart: CartCheckout | None = None,
    ) -> Reservation:
        """Reserve all lines or none in one Lua script; see db/lua/order_reserve.lua."""
        order_id = new_order_id()
        now_ms = int(time.time() * 1000)
        line_keys: list[str] = []
        line_args: list[Any] = []
        for pid, qty in lines:
            line_keys += [keys.stock(pid), keys.stock_held(pid), keys.product_info(pid)]
            line_args += [pid, qty]
        script_keys = [
            keys.idempotency(customer_id, idempotency_key),
            keys.allowance(customer_id),
            keys.ORDERS_TO_PERSIST,
            keys.PERSIST_PENDING,
            keys.order(order_id),
            keys.orders_inflight(customer_id),
            keys.cart(cart.owner) if cart else keys.cart("none"),
            keys.CARTS_DIRTY,
            *line_keys,
        ]
        args = [
            customer_id,
            order_id,
            now_ms,
            now_ms + self._payment_ttl * 1000,
            fingerprint(lines, cart is not None),
            IDEMPOTENCY_TTL_SECONDS,
            "" if cart is None else cart.version,
            "" if cart is None else cart.owner,
            0 if cart is None else cart.ttl_seconds,
            len(lines),
            *line_args,
        ]
        for _ in range(4):
            result = await self._scripts.order_reserve(keys=script_keys, args=args)
            status = as_text(result[0])
            if status == "OK":
                record = OrderRecord(
                    id=order_id,
                    customer_id=customer_id,
                    status="PENDING",
                    cancel_reason=None,
                    needs_refund=False,
                    lines=[OrderLineRecord(int(p), int(q), int(u)) for p, q, u in json.loads(as_text(result[4]))],
                    total_cents=int(result[1]),
                    currency=as_text(result[2]),
                    created_at=datetime.fromtimestamp(now_ms / 1000, UTC),
                    expires_at=datetime.fromtimestamp(now_ms / 1000 + self._payment_ttl, UTC),
                    paid_at=None,
                    cancelled_at=None,
                    persisted=False,
                    idempotency_key=idempotency_key,
                )
                return Reservation(
                    order=record,
                    replayed=False,
                    enqueue_persistence=int(result[3]) == 1,
                )
            if status == "REPLAY":
                existing = await self.get(as_text(result[1]), customer_id)
                if existing is None:
                    raise RuntimeError("idempotency key points at an order that cannot be found")
                return Reservation(order=existing, replayed=True, enqueue_persistence=False)
            if status == "IDEM_MISMATCH":
                raise IdempotencyKeyReused()
            if status == "NO_ALLOWANCE":
                await self.load_allowance(customer_id)
                continue
            if status == "MISSING":
                pid = int(as_text(result[1]))
                rebuilt = await self._stock.rebuild([pid])
                if pid not in rebuilt:
                    raise ProductNotFound(f"no product with id {pid}", field="lines", product_id=pid)
                continue
            if status == "OUT_OF_STOCK":
                pid, left = int(as_text(result[1])), int(result[2])
                raise OutOfStock(f"only {left} left of product {pid}", product_id=pid, available=left)
            if status == "LIMIT":
                pid, left = int(as_text(result[1])), int(result[2])
                raise PurchaseLimitExceeded(
                    f"you may buy {left} more of product {pid}", product_id=pid, available=left
                )
            if status == "CURRENCY":
                raise InvalidInput("all lines of an order must share one currency", field="lines",
                                   product_id=int(as_text(result[1])))
            if status == "CART_CHANGED":
                raise CartChanged()
            raise RuntimeError(f"order_reserve answered {status}")
        raise RuntimeError("reservation kept finding missing state in Redis")

    # Reading ---------------------------------------------------------------------------------

    async def _inflight_records(self, customer_id: int) -> list[OrderRecord]:
        ids = [as_text(i) for i in await self._redis.smembers(keys.orders_inflight(customer_id))]
        return [r for r in await self._redis_records(ids) if r is not None and not r.persisted]

    async def _redis_records(self, order_ids: Sequence[str]) -> list[OrderRecord | None]:
        if not order_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for oid in order_ids:
                pipe.hgetall(keys.order(oid))
            raws = await pipe.execute()
        return [OrderRecord.from_hash(raw) if raw else None for raw in raws]

    async def get(self, order_id: str, customer_id: int | None) -> OrderRecord | None:
        """An order by id; `customer_id` None means any customer's (staff)."""
        try:
            uuid.UUID(order_id)
        except ValueError:
            return None
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
        """The customer's orders, newest first (UUIDv7 ids sort by time), and whether more follow."""
        persisted = await self._from_postgres(customer_id=customer_id, before=before, limit=first + 1)
        seen = {r.id for r in persisted}
        inflight = [
            r for r in await self._inflight_records(customer_id)
            if r.id not in seen and (before is None or r.id < before)
        ]
        merged = sorted([*persisted, *inflight], key=lambda r: r.id, reverse=True)
        return merged[:first], len(merged) > first

    async def _from_postgres(
        self,
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
        async with self._sessions() as session:
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
        return [
            OrderRecord(
                id=str(r.id),
                customer_id=r.customer_id,
                status=r.status,
                cancel_reason=r.cancel_reason,
                needs_refund=r.needs_refund,
                lines=lines.get(r.id, []),
                total_cents=r.total_cents,
                currency=r.currency.strip(),
                created_at=r.created_at,
                expires_at=r.expires_at,
                paid_at=r.paid_at,
                cancelled_at=r.cancelled_at,
                persisted=True,
                idempotency_key=r.idempotency_key,
            )
            for r in rows
        ]


class CartChanged(Exception):
    """The cart changed between reading it and reserving it; the caller reads it again."""
