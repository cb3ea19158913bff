"""The Subscription root: order status (owners and staff) and live stock (everyone).

Events are yielded as schema.live.Shared: their types read nothing but the event itself, so one
execution serves every subscriber of the same operation and variables. Refusals are GraphQL
errors with `extensions.code`, the codes of UserError.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from resolvers import subscriptions
from resolvers.context import RequestContext
from schema.errors import refusals_as_errors
from schema.live import Shared
from schema.orders import CancelReason, OrderStatus

Ctx = Info[RequestContext, None]


@strawberry.type
class OrderStatusEvent:
    order_id: strawberry.ID
    status: OrderStatus
    cancel_reason: CancelReason | None
    at: datetime


@strawberry.type
class StockEvent:
    product_id: strawberry.ID
    available: int
    at: datetime


@strawberry.type
class Subscription:
    @strawberry.subscription(description="first event: the current status; then every change")
    async def order_status(self, info: Ctx, order_id: strawberry.ID) -> AsyncGenerator[OrderStatusEvent, None]:
        async with refusals_as_errors():
            async for change in subscriptions.order_status(info.context, order_id):
                yield Shared(change, OrderStatusEvent(  # type: ignore[misc]
                    order_id=strawberry.ID(change.order_id),
                    status=OrderStatus(change.status),
                    cancel_reason=CancelReason(change.cancel_reason) if change.cancel_reason else None,
                    at=change.at,
                ))

    @strawberry.subscription(description="first event: current available units; then changes")
    async def product_stock(self, info: Ctx, product_id: strawberry.ID) -> AsyncGenerator[StockEvent, None]:
        async with refusals_as_errors():
            async for change in subscriptions.product_stock(info.context, product_id):
                yield Shared(change, StockEvent(  # type: ignore[misc]
                    product_id=strawberry.ID(str(change.product_id)), available=change.available, at=change.at))
