"""Drop types of the contract: the drop, a shopper's place in its line, and their payloads."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from db.drop_line import LineView
from db.drops import DropRecord
from db.enums import DropLineStatus
from resolvers import drops
from resolvers.context import RequestContext
from schema.errors import UserError
from schema.strawberry_internals import describe_enum
from schema.types import Product

describe_enum(
    DropLineStatus,
    "Where a shopper stands in a drop's line.",
    {
        "WAITING": (
            "In line. Before the start `position` is null: everyone who joined early is put in a random order at the "
            "start. After it, `position` and `ahead` say how far the shopper is from their turn."
        ),
        "ADMITTED": (
            "It is the shopper's turn: they hold a pass until `passExpiresAt` and may buy the drop's products with "
            "one order (`placeOrder` or `checkout`)."
        ),
        "PURCHASED": "The shopper's pass was used for an order. Final.",
        "PASS_EXPIRED": (
            "The shopper's pass ran out before it was used; its place in the budget went to the next shopper."
        ),
        "LIKELY_SOLD_OUT": (
            "The shoppers ahead, each buying at least one unit, would take every unit left: the shopper's turn will "
            "come only if units come back (unpaid or cancelled orders). The line keeps the place."
        ),
        "SOLD_OUT": "No unit of the drop is left. The line keeps the place in case units come back.",
        "ENDED": "Staff ended the drop; its products sell as any other now. Final.",
        "NOT_IN_LINE": "The caller has no place in this drop's line: call `joinDrop`.",
    },
)


@strawberry.type(
    description=(
        "A drop: products sold through a waiting line that opens at `startsAt` and admits shoppers by its policy "
        "(`admitPerSecond`, `maxActive` or both), never more than the units left can serve."
    )
)
class Drop:
    id: strawberry.ID = strawberry.field(description="The drop's id.")
    name: str = strawberry.field(description="Display name, 1-200 characters.")
    starts_at: datetime = strawberry.field(
        description="When the line starts admitting (UTC). Shoppers who join before then are put in a random order."
    )
    admit_per_second: float | None = strawberry.field(
        description="Shoppers admitted a second at most (saved up for one second at most); null for no rate."
    )
    max_active: int | None = strawberry.field(
        description="Shoppers holding a pass at once at most; null for no such cap."
    )
    pass_ttl_seconds: int = strawberry.field(description="How long an admitted shopper's pass lasts, in seconds.")
    created_at: datetime = strawberry.field(description="When staff created the drop (UTC).")
    ended_at: datetime | None = strawberry.field(
        description="When staff ended the drop (UTC); null while it is live. A product of a live drop is sold only to "
        "shoppers holding a pass."
    )
    product_ids: strawberry.Private[tuple[int, ...]]

    @strawberry.field(description="The drop's products, in order of id.")
    async def products(self, info: Info[RequestContext, None]) -> list[Product]:
        records = await info.context.products.load_many(list(self.product_ids))
        return [Product.from_record(r) for r in records if r is not None]

    @strawberry.field(description="Units of the drop's products that can still be bought right now, read live.")
    async def units_left(self, info: Info[RequestContext, None]) -> int:
        return sum(max(0, v or 0) for v in await info.context.available.load_many(list(self.product_ids)))

    @classmethod
    def from_record(cls, record: DropRecord) -> Drop:
        return cls(
            id=strawberry.ID(str(record.id)), name=record.name, starts_at=record.starts_at,
            admit_per_second=record.admit_per_second, max_active=record.max_active,
            pass_ttl_seconds=record.pass_ttl_seconds, created_at=record.created_at, ended_at=record.ended_at,
            product_ids=record.product_ids,
        )


@strawberry.type(
    description=(
        "The caller's place in a drop's line, as `joinDrop`, `dropLine` and the `dropLine` subscription tell it. "
        "A shopper sees only their own place."
    )
)
class DropLine:
    drop_id: strawberry.ID = strawberry.field(description="The drop's id.")
    status: DropLineStatus = strawberry.field(description="Where the shopper stands; each value says what follows.")
    position: int | None = strawberry.field(
        description="1 for the next shopper to be admitted; null before the start and unless WAITING, "
        "LIKELY_SOLD_OUT or SOLD_OUT (0 while ADMITTED)."
    )
    ahead: int | None = strawberry.field(
        description="Shoppers still to be admitted before this one (`position` - 1); null when `position` is."
    )
    estimated_wait_seconds: int | None = strawberry.field(
        description="A rough wait in seconds until the shopper's turn (before the start: until the start), from the "
        "drop's policy; null when the turn may never come (sold out) or is over."
    )
    units_left: int = strawberry.field(description="Units of the drop's products that can still be bought.")
    line_length: int = strawberry.field(description="Shoppers who have joined the line, admitted ones included.")
    pass_expires_at: datetime | None = strawberry.field(
        description="While ADMITTED: when the pass runs out (UTC). Null otherwise."
    )

    @classmethod
    def from_view(cls, view: LineView) -> DropLine:
        return cls(
            drop_id=strawberry.ID(str(view.drop_id)), status=view.status, position=view.position,
            ahead=view.ahead, estimated_wait_seconds=view.estimated_wait_seconds, units_left=view.units_left,
            line_length=view.line_length, pass_expires_at=drops.pass_expires_at(view),
        )


@strawberry.input(description="A new drop, for `dropCreate`. At least one of `admitPerSecond` and `maxActive`.")
class DropInput:
    name: str = strawberry.field(description="Display name, 1-200 characters.")
    starts_at: datetime = strawberry.field(description="When the line starts admitting: in the future, within a year.")
    product_ids: list[strawberry.ID] = strawberry.field(
        description="1-50 products, none of them in another drop that has not ended."
    )
    admit_per_second: float | None = strawberry.field(
        default=None, description="Shoppers to admit a second, above 0 and at most 100,000; null for no rate."
    )
    max_active: int | None = strawberry.field(
        default=None, description="Shoppers who may hold a pass at once, 1 to 10,000,000; null for no cap."
    )
    pass_ttl_seconds: int = strawberry.field(
        default=120, description="How long a pass lasts, 5 to 86,400 seconds; 120 by default."
    )


@strawberry.type(description="What `dropCreate` and `dropEnd` return: the drop, or `errors`.")
class DropPayload:
    drop: Drop | None = strawberry.field(default=None, description="The drop as it is now; null when `errors` is not "
                                         "empty.")
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Expected failures; empty on success: NOT_AUTHENTICATED, FORBIDDEN (not staff), INVALID_INPUT, "
        "PRODUCT_NOT_FOUND, DROP_NOT_FOUND.",
    )


@strawberry.type(description="What `joinDrop` returns: the caller's place in the line, or `errors`.")
class DropLinePayload:
    line: DropLine | None = strawberry.field(
        default=None, description="The caller's place; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Expected failures; empty on success: NOT_AUTHENTICATED, DROP_NOT_FOUND, RATE_LIMITED.",
    )
