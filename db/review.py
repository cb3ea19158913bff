"""What needs a human: orders paid after they were cancelled, payment events nothing could apply.

Both lists are newest first and paged by keyset (the last row's sort key), so a page costs the
same however deep into the list it is:

- orders with `needs_refund` (money arrived for an order already cancelled), by id (UUIDv7, so by
  creation time);
- payment events in a state that no job will move on its own (`review`: amount or currency differ
  from the order's; `waiting`: no such order in PostgreSQL yet, which for an event older than a
  few seconds means none is coming; `orphaned`: the order id is not an order id), or in any one
  state asked for, by receipt time and id.

Both read PostgreSQL only: a refund flag and a held event exist only there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.order_records import ORDER_COLUMNS, OrderLineRecord, OrderRecord

__all__ = [
    "EVENT_STATES",
    "REVIEW_STATES",
    "EventKey",
    "PaymentEventRecord",
    "orders_needing_refund",
    "payment_events",
]

# Every state an event can be in (db.payments), and those no job moves on its own.
EVENT_STATES = ("received", "applied", "review", "waiting", "orphaned")
REVIEW_STATES = ("review", "waiting", "orphaned")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PaymentEventRecord:
    id: str
    type: str
    order_id: str
    amount_cents: int
    currency: str
    state: str
    outcome: str | None
    provider_created_at: datetime
    received_at: datetime
    applied_at: datetime | None

    @property
    def key(self) -> EventKey:
        return EventKey.of(self.received_at, self.id)


@dataclass(frozen=True)
class EventKey:
    """Where an event sorts: its receipt time in whole microseconds since 1970 (exact, unlike a float), then its id."""

    received_us: int
    event_id: str

    @classmethod
    def of(cls, received_at: datetime, event_id: str) -> EventKey:
        delta = received_at - _EPOCH
        return cls((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds, event_id)

    @property
    def received_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.received_us)


async def orders_needing_refund(
    sessions: async_sessionmaker[AsyncSession], first: int, before: str | None
) -> tuple[list[OrderRecord], bool]:
    """Orders flagged `needs_refund`, newest first, after the order id `before`; and whether more follow."""
    params: dict[str, Any] = {"limit": first + 1}
    where = "needs_refund"
    if before is not None:
        where += " AND id < CAST(:before AS uuid)"
        params["before"] = before
    async with sessions() as session:
        rows = (await session.execute(
            text(f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where} ORDER BY id DESC LIMIT :limit"), params,
        )).all()
        lines: dict[uuid.UUID, list[OrderLineRecord]] = {}
        if rows:
            items = await session.execute(
                text("SELECT order_id, product_id, quantity, unit_price_cents FROM order_items "
                     "WHERE customer_id = ANY(:cids) AND order_id = ANY(:oids) ORDER BY product_id"),
                {"cids": list({r.customer_id for r in rows}), "oids": [r.id for r in rows]},
            )
            for item in items:
                lines.setdefault(item.order_id, []).append(
                    OrderLineRecord(item.product_id, item.quantity, item.unit_price_cents))
    records = [OrderRecord.from_row(r, lines.get(r.id, [])) for r in rows]
    return records[:first], len(records) > first


async def payment_events(
    sessions: async_sessionmaker[AsyncSession], states: tuple[str, ...], first: int, before: EventKey | None
) -> tuple[list[PaymentEventRecord], bool]:
    """Events in any of `states`, newest first, after the key `before`; and whether more follow."""
    params: dict[str, Any] = {"states": list(states), "limit": first + 1}
    where = "state = ANY(:states)"
    if before is not None:
        where += " AND (received_at, id) < (:received_at, :event_id)"
        params.update(received_at=before.received_at, event_id=before.event_id)
    async with sessions() as session:
        rows = (await session.execute(
            text("SELECT id, type, order_id, amount_cents, currency, state, outcome, provider_created_at, "
                 f"received_at, applied_at FROM payment_events WHERE {where} "
                 "ORDER BY received_at DESC, id DESC LIMIT :limit"),
            params,
        )).all()
    records = [
        PaymentEventRecord(
            id=r.id, type=r.type, order_id=r.order_id, amount_cents=r.amount_cents, currency=r.currency,
            state=r.state, outcome=r.outcome, provider_created_at=r.provider_created_at,
            received_at=r.received_at, applied_at=r.applied_at,
        )
        for r in rows
    ]
    return records[:first], len(records) > first
