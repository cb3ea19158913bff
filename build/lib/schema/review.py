"""Staff review: the queries that list what needs a human, and the PaymentEvent type they return.

A caller who is not staff gets a top-level error whose `extensions.code` is NOT_AUTHENTICATED
(no valid token) or FORBIDDEN (a customer), with `data` null, as queries cannot carry a payload's
`errors` list.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from db.errors import RushcartError
from db.order_records import canonical_order_id
from db.review import PaymentEventRecord
from resolvers import review
from resolvers.context import RequestContext
from schema.orders import Order, OrderConnection, OrderEdge, build_order, build_orders
from schema.types import PageInfo

Ctx = Info[RequestContext, None]
T = TypeVar("T")

First = Annotated[int | None, strawberry.argument(description="how many to return, at most 100; 20 if null")]
After = Annotated[
    str | None, strawberry.argument(description="the `endCursor` of the previous page; null for the first page")
]


@strawberry.enum(description="Where a payment event is in its processing (the webhook stores it, a job applies it).")
class PaymentEventState(Enum):
    RECEIVED = strawberry.enum_value("received", description="stored, not applied yet (a job is on its way)")
    APPLIED = strawberry.enum_value("applied", description="applied to its order; `outcome` says how")
    REVIEW = strawberry.enum_value(
        "review", description="held: its amount or currency differ from the order's; the order was left as it was"
    )
    WAITING = strawberry.enum_value(
        "waiting",
        description="its order is not in the database: normal for a few seconds after the order was placed, "
                    "after that an order that never came",
    )
    ORPHANED = strawberry.enum_value("orphaned", description="its order id is not an order id; nothing was applied")


@strawberry.type(description="A payment provider's event as the webhook received it, and what became of it.")
class PaymentEvent:
    id: strawberry.ID = strawberry.field(description="the provider's event id")
    type: str = strawberry.field(description="`payment.succeeded` or `payment.failed`")
    order_id: strawberry.ID = strawberry.field(description="the order id the event names, as sent")
    amount_cents: str = strawberry.field(
        description="the amount the provider reported, in cents, as decimal digits (a provider's amount can "
                    "exceed GraphQL's 32-bit Int)"
    )
    currency: str = strawberry.field(description="the currency the provider reported, as sent")
    state: PaymentEventState = strawberry.field(description="where the event is in its processing")
    outcome: str | None = strawberry.field(
        description="null until processed; `paid`, `already_paid`, `refund_needed`, `cancelled` or `ignored` "
                    "when applied; `amount_mismatch` when held for review; `not_an_order_id` when orphaned"
    )
    provider_created_at: datetime = strawberry.field(description="when the provider says it created the event")
    received_at: datetime = strawberry.field(description="when the webhook stored it")
    applied_at: datetime | None = strawberry.field(description="when it was applied, held or orphaned; null before")

    @strawberry.field(description="the order the event names, if it exists")
    async def order(self, info: Ctx) -> Order | None:
        order_id = canonical_order_id(self.order_id)
        if order_id is None:
            return None
        record = await info.context.state.orders.get(order_id, None)
        return build_order(record) if record else None

    @classmethod
    def from_record(cls, r: PaymentEventRecord) -> PaymentEvent:
        return cls(
            id=strawberry.ID(r.id), type=r.type, order_id=strawberry.ID(r.order_id), amount_cents=str(r.amount_cents),
            currency=r.currency, state=PaymentEventState[r.state.upper()], outcome=r.outcome,
            provider_created_at=r.provider_created_at, received_at=r.received_at, applied_at=r.applied_at,
        )


@strawberry.type(description="One payment event in a list, with the cursor that continues the list after it.")
class PaymentEventEdge:
    cursor: str = strawberry.field(description="pass as `after` to continue after this event")
    node: PaymentEvent = strawberry.field(description="the event")


@strawberry.type(description="A page of payment events.")
class PaymentEventConnection:
    edges: list[PaymentEventEdge] = strawberry.field(description="this page's events, newest first")
    page_info: PageInfo = strawberry.field(description="where the page ends and whether more follow")


async def _coded(call: Awaitable[T]) -> T:
    # A query has no payload to carry typed errors: the code goes in the error's extensions instead.
    try:
        return await call
    except RushcartError as exc:
        raise GraphQLError(exc.message, extensions={"code": exc.code.value}) from None


async def orders_needing_refund(info: Ctx, first: First = 20, after: After = None) -> OrderConnection:
    page = await _coded(review.orders_needing_refund(info.context, 20 if first is None else first, after))
    nodes = build_orders(page.items)
    edges = [OrderEdge(cursor=review.refund_cursor(r), node=n) for r, n in zip(page.items, nodes, strict=True)]
    return OrderConnection(
        edges=edges, page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None,
                                        has_next_page=page.has_next_page))


async def payment_events_for_review(
    info: Ctx,
    first: First = 20,
    after: After = None,
    state: Annotated[PaymentEventState | None, strawberry.argument(
        description="only events in this state; null for all that need a human: REVIEW, WAITING and ORPHANED"
    )] = None,
) -> PaymentEventConnection:
    page = await _coded(review.payment_events_for_review(
        info.context, 20 if first is None else first, after, None if state is None else state.name.lower()))
    edges = [PaymentEventEdge(cursor=review.event_cursor(r), node=PaymentEvent.from_record(r)) for r in page.items]
    return PaymentEventConnection(
        edges=edges, page_info=PageInfo(end_cursor=edges[-1].cursor if edges else None,
                                        has_next_page=page.has_next_page))


ORDERS_NEEDING_REFUND_DESCRIPTION = (
    "Staff only: orders whose payment arrived after they were cancelled (`needsRefund`), newest first."
)
PAYMENT_EVENTS_FOR_REVIEW_DESCRIPTION = (
    "Staff only: payment events no job will apply on its own (held for an amount or currency mismatch, waiting "
    "for an order that is not there, or naming no order), newest first; or all events in one `state`."
)
