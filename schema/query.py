"""The Query root."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from db.errors import DropNotFound
from resolvers import auth, carts, drops, orders, products
from resolvers.context import RequestContext
from schema.carts import Cart, build_cart
from schema.drops import Drop, DropLine
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

PageSize = Annotated[
    int | None,
    strawberry.argument(description="How many items to return, 0-100 (more gives 100); 20 by default."),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="The `endCursor` of the previous page, to get the page after it; null for the first page."
    ),
]


@strawberry.type(
    description=(
        "Reads. The caller is a customer by the `Authorization: Bearer <token>` header, a guest by "
        "`X-Session-Id`, or anonymous."
    )
)
class Query:
    @strawberry.field(description="A product by id; null if there is none. Anyone may read the catalogue.")
    async def product(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="The product's id.")]
    ) -> Product | None:
        record = await products.product(info.context, id)
        return Product.from_record(record) if record else None

    @strawberry.field(
        description=(
            "The catalogue a page at a time, in order of product id. Anyone may read it. A negative `first` or a "
            "cursor this API did not issue is a top-level GraphQL error whose message names the argument."
        )
    )
    async def products(
        self,
        info: Ctx,
        first: PageSize = 20,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Text to find in the name or sku, ignoring case, up to 100 characters; null for all."
            ),
        ] = None,
    ) -> ProductConnection:
        page = await products.products(info.context, 20 if first is None else first, after, search)
        edges = [ProductEdge(cursor=products.product_cursor(r), node=Product.from_record(r)) for r in page.items]
        return ProductConnection(
            edges=edges,
            page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None, has_next_page=page.has_next_page),
        )

    @strawberry.field(description="The signed-in customer; null for guests and for an expired or revoked token.")
    async def me(self, info: Ctx) -> Customer | None:
        record = await auth.me(info.context)
        return Customer.from_record(record) if record else None

    @strawberry.field(
        description=(
            "The caller's cart: the signed-in customer's, else the guest session's. Empty if there is none "
            "(this query never fails for want of a session)."
        )
    )
    async def cart(self, info: Ctx) -> Cart:
        return await build_cart(info.context, await carts.cart(info.context))

    @strawberry.field(description="An order by id; null unless the caller owns it (staff may read any order).")
    async def order(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="The order's id.")]
    ) -> Order | None:
        record = await orders.order(info.context, id)
        return build_order(record) if record else None

    @strawberry.field(
        description=(
            "The caller's orders, newest first. Signed-in customers only: for anyone else it is a top-level "
            "GraphQL error asking to sign in."
        )
    )
    async def orders(self, info: Ctx, first: PageSize = 20, after: After = None) -> OrderConnection:
        page = await orders.orders(info.context, 20 if first is None else first, after)
        nodes = build_orders(page.items)
        edges = [OrderEdge(cursor=orders.order_cursor(r), node=n) for r, n in zip(page.items, nodes, strict=True)]
        return OrderConnection(
            edges=edges,
            page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None, has_next_page=page.has_next_page),
        )

    @strawberry.field(description="A drop by id; null if there is none. Anyone may read it.")
    async def drop(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="The drop's id.")]
    ) -> Drop | None:
        record = await drops.drop(info.context, id)
        return Drop.from_record(record) if record else None

    @strawberry.field(
        description=(
            "The caller's place in a drop's line (the signed-in customer's, else the guest session's): the same "
            "snapshot as the `dropLine` subscription's events. Null for an unknown drop; a top-level GraphQL error "
            "without a customer or session."
        )
    )
    async def drop_line(
        self, info: Ctx, drop_id: Annotated[strawberry.ID, strawberry.argument(description="The drop's id.")]
    ) -> DropLine | None:
        try:
            view = await drops.line(info.context, drop_id)
        except DropNotFound:
            return None
        return DropLine.from_view(view)

    # Staff review (schema/review.py).
    orders_needing_refund: OrderConnection = strawberry.field(
        resolver=orders_needing_refund, description=ORDERS_NEEDING_REFUND_DESCRIPTION)
    payment_events_for_review: PaymentEventConnection = strawberry.field(
        resolver=payment_events_for_review, description=PAYMENT_EVENTS_FOR_REVIEW_DESCRIPTION)
