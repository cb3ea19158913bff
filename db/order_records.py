"""An order as the stores pass it around, and the three places it is built from.

An order lives first as a Redis hash (written by the reservation script), then as PostgreSQL
rows; the reservation itself answers with what it recorded. Each source has one constructor
here, so the three cannot drift apart.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from db import buckets
from db.enums import CancelReason, OrderStatus

_UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def canonical_order_id(value: object) -> str | None:
    """The canonical spelling of an order id (lower-case 8-4-4-4-12 hex), or None for anything else:
    Python's uuid.UUID takes spellings (braces, urn:uuid:, no hyphens) that PostgreSQL refuses."""
    if not isinstance(value, str) or not _UUID_TEXT.match(value):
        return None
    return str(uuid.UUID(value))


def new_order_id(customer_id: int) -> str:
    """A UUID that sorts by creation time (laid out as a UUIDv7) and carries the customer's bucket,
    so the order's keys share the customer's slot (db.buckets); 66 random bits keep processes and
    restarts from colliding and the id unguessable."""
    return buckets.new_order_id(buckets.of_customer(customer_id))


def fingerprint(lines: Sequence[tuple[int, int]], checkout: bool) -> str:
    """What an idempotency key remembers of the request, to tell a replay from a reuse."""
    if checkout:
        return "checkout"
    return "lines:" + ",".join(f"{pid}x{qty}" for pid, qty in sorted(lines))


def _from_ms(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


@dataclass(frozen=True)
class OrderLineRecord:
    product_id: int
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderRecord:
    id: str
    customer_id: int
    status: OrderStatus
    cancel_reason: CancelReason | None
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

    @property
    def units(self) -> list[tuple[int, int]]:
        """(product id, quantity) per line."""
        return [(line.product_id, line.quantity) for line in self.lines]

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> OrderRecord:
        """From the Redis record (order:{oid}, see db.keys), already decoded to text."""
        created, expires = _from_ms(h["created_ms"]), _from_ms(h["expires_ms"])
        assert created is not None and expires is not None
        return cls(
            id=h["id"],
            customer_id=int(h["customer_id"]),
            status=OrderStatus(h["status"]),
            cancel_reason=CancelReason(h["cancel_reason"]) if h.get("cancel_reason") else None,
            needs_refund=False,
            lines=[OrderLineRecord(int(p), int(q), int(u)) for p, q, u in json.loads(h["lines"])],
            total_cents=int(h["total_cents"]),
            currency=h["currency"],
            created_at=created,
            expires_at=expires,
            paid_at=_from_ms(h.get("paid_ms")),
            cancelled_at=_from_ms(h.get("cancelled_ms")),
            persisted=h.get("persisted") == "1",
            idempotency_key=h.get("idem_key", "").split(":", 2)[-1],
        )

    @classmethod
    def reserved(
        cls,
        *,
        order_id: str,
        customer_id: int,
        lines: Sequence[tuple[int, int, int]],
        total_cents: int,
        currency: str,
        created_ms: int,
        expires_ms: int,
        idempotency_key: str,
    ) -> OrderRecord:
        """From what the reservation script answered for the order it just recorded."""
        created, expires = _from_ms(str(created_ms)), _from_ms(str(expires_ms))
        assert created is not None and expires is not None
        return cls(
            id=order_id,
            customer_id=customer_id,
            status=OrderStatus.PENDING,
            cancel_reason=None,
            needs_refund=False,
            lines=[OrderLineRecord(p, q, u) for p, q, u in lines],
            total_cents=total_cents,
            currency=currency,
            created_at=created,
            expires_at=expires,
            paid_at=None,
            cancelled_at=None,
            persisted=False,
            idempotency_key=idempotency_key,
        )

    @classmethod
    def from_row(cls, row: Any, lines: list[OrderLineRecord]) -> OrderRecord:
        """From an `orders` row (ORDER_COLUMNS) and its `order_items`."""
        return cls(
            id=str(row.id),
            customer_id=row.customer_id,
            status=OrderStatus(row.status),
            cancel_reason=CancelReason(row.cancel_reason) if row.cancel_reason else None,
            needs_refund=row.needs_refund,
            lines=lines,
            total_cents=row.total_cents,
            currency=row.currency.strip(),
            created_at=row.created_at,
            expires_at=row.expires_at,
            paid_at=row.paid_at,
            cancelled_at=row.cancelled_at,
            persisted=True,
            idempotency_key=row.idempotency_key,
        )


ORDER_COLUMNS = (
    "customer_id, id, status, cancel_reason, needs_refund, total_cents, currency, idempotency_key, "
    "created_at, expires_at, paid_at, cancelled_at"
)
