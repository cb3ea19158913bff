"""Order types of the contract, built from db order records with their products loaded once."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db.enums import CancelReason, OrderStatus
from db.order_records import OrderRecord
from resolvers.context import RequestContext
from schema.errors import UserError
from schema.strawberry_internals import describe_enum
from schema.types import PageInfo, Product

describe_enum(
    OrderStatus,
    (
        "Where an order is in its life. It moves only PENDING -> PAID or PENDING -> CANCELLED; PAID and CANCELLED are "
        "final."
    ),
    {
        "PENDING": "Placed, its units reserved, waiting for payment until `expiresAt`.",
        "PAID": "Paid with the right amount and currency. Final.",
        "CANCELLED": (
            "Cancelled (see `cancelReason`): its units went back to stock and to the customer's allowance, exactly "
            "once. Final."
        ),
    },
)


describe_enum(
    CancelReason,
    "Why an order was cancelled.",
    {
        "EXPIRED": "Not paid by `expiresAt`.",
        "PAYMENT_FAILED": "The payment provider reported that the payment failed.",
        "CUSTOMER": "Its customer cancelled it with `cancelOrder`.",
        "STAFF": "Staff cancelled it with `cancelOrder`.",
    },
)


@strawberry.type(description="One product of an order, at the price it was bought at.")
class OrderLine:
    product: Product = strawberry.field(description="The product.")
    quantity: int = strawberry.field(description="Units bought, 1-100.")
    unit_price_cents: int = strawberry.field(
        description="The price of one unit when the order was placed, in cents of the order's currency."
    )


@strawberry.type(
    description=(
        "An order placed by `checkout` or `placeOrder`. Its units are reserved from the moment it is answered; "
        "amounts are integer cents, times are UTC."
    )
)
class Order:
    id: strawberry.ID = strawberry.field(description="The order's id, a UUID.")
    status: OrderStatus = strawberry.field(
        description="PENDING until paid or cancelled; subscribe to `orderStatus` to follow it."
    )
    cancel_reason: CancelReason | None = strawberry.field(
        description="Why the order was cancelled; null unless `status` is CANCELLED."
    )
    needs_refund: bool = strawberry.field(
        description=(
            "True when money arrived for an order that was already cancelled: the order stays CANCELLED and the "
            "payment is to be refunded."
        )
    )
    record: strawberry.Private[OrderRecord]

    @strawberry.field(description="The ordered products, one line per product.")
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

    total_cents: int = strawberry.field(
        description="What the order costs: the sum of quantity times unit price over its lines, in cents."
    )
    currency: str = strawberry.field(
        description="ISO 4217 code of the amounts; all lines of an order share one currency."
    )
    created_at: datetime = strawberry.field(description="When the order was placed (UTC).")
    expires_at: datetime = strawberry.field(
        description=(
            "The payment deadline (UTC): a PENDING order not paid by then is cancelled (EXPIRED) and its units "
            "released. 15 minutes after `createdAt` by default."
        )
    )
    paid_at: datetime | None = strawberry.field(description="When the payment was applied (UTC); null unless PAID.")
    cancelled_at: datetime | None = strawberry.field(
        description="When the order was cancelled (UTC); null unless CANCELLED."
    )


@strawberry.type(description="One order in a page of `orders`.")
class OrderEdge:
    cursor: str = strawberry.field(description="This order's place in the list: pass it as `after` to go on from it.")
    node: Order = strawberry.field(description="The order.")


@strawberry.type(description="A page of the caller's orders, newest first.")
class OrderConnection:
    edges: list[OrderEdge] = strawberry.field(description="The orders of this page, at most `first` of them.")
    page_info: PageInfo = strawberry.field(description="Where this page ends and whether more follow.")


_BUY_ERRORS = (
    "Expected failures; empty on success. Nothing is reserved when there is one: NOT_AUTHENTICATED, "
    "INVALID_INPUT, EMPTY_CART (checkout), PRODUCT_NOT_FOUND, OUT_OF_STOCK, PURCHASE_LIMIT_EXCEEDED, "
    "IDEMPOTENCY_KEY_REUSED."
)


@strawberry.type(description="What `checkout` and `placeOrder` return: the PENDING order, or `errors`.")
class CheckoutPayload:
    order: Order | None = strawberry.field(
        default=None,
        description=(
            "The new order, PENDING with its units reserved (a replayed `idempotencyKey` returns the earlier order "
            "as it is now); null when `errors` is not empty."
        ),
    )
    errors: list[UserError] = strawberry.field(default_factory=list, description=_BUY_ERRORS)


@strawberry.type(description="What `cancelOrder` returns: the cancelled order, or `errors`.")
class OrderPayload:
    order: Order | None = strawberry.field(
        default=None, description="The order, now CANCELLED; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Expected failures; empty on success: NOT_AUTHENTICATED, ORDER_NOT_FOUND, ORDER_NOT_CANCELLABLE.",
    )


def build_orders(records: list[OrderRecord]) -> list[Order]:
    return [build_order(r) for r in records]


def build_order(r: OrderRecord) -> Order:
    return Order(
        id=strawberry.ID(r.id),
        status=r.status,
        cancel_reason=r.cancel_reason,
        needs_refund=r.needs_refund,
        record=r,
        total_cents=r.total_cents,
        currency=r.currency,
        created_at=r.created_at,
        expires_at=r.expires_at,
        paid_at=r.paid_at,
        cancelled_at=r.cancelled_at,
    )
