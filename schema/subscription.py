"""The Subscription root: order status (owners and staff) and live stock (everyone).

Events are yielded as schema.live.Shared: their types read nothing but the event itself, so one
execution serves every subscriber of the same operation and variables. Refusals are GraphQL
errors with `extensions.code`, the codes of UserError.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from resolvers import drops, subscriptions
from resolvers.context import RequestContext
from schema.drops import DropLine
from schema.errors import refusals_as_errors
from schema.live import Shared
from schema.orders import CancelReason, OrderStatus

Ctx = Info[RequestContext, None]


@strawberry.type(description="An order's status, as sent by `orderStatus`.")
class OrderStatusEvent:
    order_id: strawberry.ID = strawberry.field(description="The order's id.")
    status: OrderStatus = strawberry.field(description="The order's status.")
    cancel_reason: CancelReason | None = strawberry.field(
        description="Why the order was cancelled; null unless `status` is CANCELLED."
    )
    at: datetime = strawberry.field(description="When the order took this status (UTC): placed, paid or cancelled.")


@strawberry.type(description="A product's available units, as sent by `productStock`.")
class StockEvent:
    product_id: strawberry.ID = strawberry.field(description="The product's id.")
    available: int = strawberry.field(
        description="Units that can still be bought right now, as `Product.available`: never negative."
    )
    at: datetime = strawberry.field(description="When the figure changed (UTC), or when it was read.")


@strawberry.type(
    description=(
        "Live updates, over a WebSocket on /graphql (sub-protocol graphql-transport-ws; graphql-ws is also "
        "accepted). Send the identity in the `connection_init` payload, e.g. "
        '{"Authorization": "Bearer <token>"}.'
    )
)
class Subscription:
    @strawberry.subscription(
        description=(
            "An order's current status first, then each change; it ends after PAID or CANCELLED. For its customer "
            "and staff only: for anyone else, or an unknown order, it ends at once with a GraphQL error."
        )
    )
    async def order_status(
        self, info: Ctx, order_id: Annotated[strawberry.ID, strawberry.argument(description="The order's id.")]
    ) -> AsyncGenerator[OrderStatusEvent, None]:
        async with refusals_as_errors():
            async for change in subscriptions.order_status(info.context, order_id):
                yield Shared(change, OrderStatusEvent(  # type: ignore[misc]
                    order_id=strawberry.ID(change.order_id),
                    status=change.status,
                    cancel_reason=change.cancel_reason,
                    at=change.at,
                ))

    @strawberry.subscription(
        description=(
            "A product's available units first, then each change, at most four events a second (a burst of "
            "changes sends the newest figure). Anyone may subscribe; for an unknown product it ends at once with a "
            "GraphQL error."
        )
    )
    async def product_stock(
        self, info: Ctx, product_id: Annotated[strawberry.ID, strawberry.argument(description="The product's id.")]
    ) -> AsyncGenerator[StockEvent, None]:
        async with refusals_as_errors():
            async for change in subscriptions.product_stock(info.context, product_id):
                yield Shared(change, StockEvent(  # type: ignore[misc]
                    product_id=strawberry.ID(str(change.product_id)), available=change.available, at=change.at))

    @strawberry.subscription(
        description=(
            "The caller's place in a drop's line first (as the `dropLine` query), then each change: position, "
            "estimated wait and units left about once a second while waiting, ADMITTED with `passExpiresAt` when "
            "their turn comes, SOLD_OUT or LIKELY_SOLD_OUT as soon as their turn can no longer come, and back to "
            "WAITING if units come back. It ends after PURCHASED, ENDED or NOT_IN_LINE. For the place of the "
            "connection's customer (or guest session, `X-Session-Id` in the `connection_init` payload) only; for an "
            "unknown drop it ends at once with a GraphQL error."
        )
    )
    async def drop_line(
        self, info: Ctx, drop_id: Annotated[strawberry.ID, strawberry.argument(description="The drop's id.")]
    ) -> AsyncGenerator[DropLine, None]:
        async with refusals_as_errors():
            async for view in drops.follow(info.context, drop_id):
                # The event depends on the view alone, so equal views of many shoppers share one execution.
                yield Shared(view, DropLine.from_view(view))  # type: ignore[misc]
