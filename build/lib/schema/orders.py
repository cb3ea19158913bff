"""Order types of the contract, built from db order records with their products loaded once."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from db.order_records import OrderRecord
from resolvers.context import RequestContext
from schema.errors import UserError
from schema.types import PageInfo, Product


@strawberry.enum
class OrderStatus(Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


@strawberry.enum
class CancelReason(Enum):
    EXPIRED = "EXPIRED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"


@strawberry.type
class OrderLine:
    product: Product
    quantity: int
    unit_price_cents: int


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    cancel_reason: CancelReason | None
    needs_refund: bool = strawberry.field(description="money arrived for an order that was already cancelled")
    record: strawberry.Private[OrderRecord]

    @strawberry.field
    async def lines(self, info: Info[RequestContext, None]) -> list[OrderLine]:
        # Resolved only when asked for: a buyer who only wants the status costs no product lookups.
        ids = [line.product_id for line in self.record.lines]
        products = await info.context.products.load_many(ids)
        return [
            OrderLine(product=Product.from_record(product), quantity=line.quantity,
                      unit_price_cents=line.unit_price_cents)
            for line, product in zip(self.record.lines, products, strict=True)
            if product is not None
        ]

    total_cents: int
    currency: str
    created_at: datetime
    expires_at: datetime = strawberry.field(
        description="a PENDING order not paid by then is cancelled and its stock released"
    )
    paid_at: datetime | None
    cancelled_at: datetime | None


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo


@strawberry.type
class CheckoutPayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class OrderPayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def build_orders(records: list[OrderRecord]) -> list[Order]:
    return [build_order(r) for r in records]


def build_order(r: OrderRecord) -> Order:
    return Order(
        id=strawberry.ID(r.id),
        status=OrderStatus(r.status),
        cancel_reason=CancelReason(r.cancel_reason) if r.cancel_reason else None,
        needs_refund=r.needs_refund,
        record=r,
        total_cents=r.total_cents,
        currency=r.currency,
        created_at=r.created_at,
        expires_at=r.expires_at,
        paid_at=r.paid_at,
        cancelled_at=r.cancelled_at,
    )
