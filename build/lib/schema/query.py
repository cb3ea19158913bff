"""The Query root."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers import auth, carts, orders, products
from resolvers.context import RequestContext
from schema.carts import Cart, build_cart
from schema.orders import Order, OrderConnection, OrderEdge, build_order, build_orders
from schema.review import (
    ORDERS_NEEDING_REFUND_DESCRIPTION,
    PAYMENT_EVENTS_FOR_REVIEW_DESCRIPTION,
    PaymentEventConnection,
    orders_needing_refund,
    payment_events_for_review,
)
from schema.types import Customer, PageInfo, Product, ProductConnection, ProductEdge

Ctx = Info[RequestContext, None]


@strawberry.type
class Query:
    @strawberry.field
    async def product(self, info: Ctx, id: strawberry.ID) -> Product | None:
        record = await products.product(info.context, id)
        return Product.from_record(record) if record else None

    @strawberry.field
    async def products(
        self, info: Ctx, first: int | None = 20, after: str | None = None, search: str | None = None
    ) -> ProductConnection:
        page = await products.products(info.context, 20 if first is None else first, after, search)
        edges = [ProductEdge(cursor=products.product_cursor(r), node=Product.from_record(r)) for r in page.items]
        return ProductConnection(
            edges=edges,
            page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None, has_next_page=page.has_next_page),
        )

    @strawberry.field(description="null for guests")
    async def me(self, info: Ctx) -> Customer | None:
        record = await auth.me(info.context)
        return Customer.from_record(record) if record else None

    @strawberry.field(description="the caller's cart (guest session or customer); empty if none")
    async def cart(self, info: Ctx) -> Cart:
        return await build_cart(info.context, await carts.cart(info.context))

    @strawberry.field(description="null unless the caller owns it (or is staff)")
    async def order(self, info: Ctx, id: strawberry.ID) -> Order | None:
        record = await orders.order(info.context, id)
        return build_order(record) if record else None

    @strawberry.field(description="the caller's, newest first")
    async def orders(self, info: Ctx, first: int | None = 20, after: str | None = None) -> OrderConnection:
        page = await orders.orders(info.context, 20 if first is None else first, after)
        nodes = build_orders(page.items)
        edges = [OrderEdge(cursor=orders.order_cursor(r), node=n) for r, n in zip(page.items, nodes, strict=True)]
        return OrderConnection(
            edges=edges,
            page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None, has_next_page=page.has_next_page),
        )

    # Staff review (schema/review.py).
    orders_needing_refund: OrderConnection = strawberry.field(
        resolver=orders_needing_refund, description=ORDERS_NEEDING_REFUND_DESCRIPTION)
    payment_events_for_review: PaymentEventConnection = strawberry.field(
        resolver=payment_events_for_review, description=PAYMENT_EVENTS_FOR_REVIEW_DESCRIPTION)
