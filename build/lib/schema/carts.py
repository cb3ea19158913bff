"""Cart types of the contract, built from a db cart with the products loaded once."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from db.carts import CartContents, MergeReport
from resolvers.context import RequestContext
from schema.types import Product


@strawberry.enum
class CartMergeStrategy(Enum):
    MERGE = "MERGE"
    KEEP_CUSTOMER_CART = "KEEP_CUSTOMER_CART"
    REPLACE_WITH_GUEST_CART = "REPLACE_WITH_GUEST_CART"


@strawberry.type
class CartLine:
    product: Product
    quantity: int
    line_total_cents: int


@strawberry.type
class Cart:
    lines: list[CartLine]
    total_quantity: int
    subtotal_cents: int
    currency: str
    updated_at: datetime | None


@strawberry.type
class CartMergeReport:
    strategy: CartMergeStrategy
    guest_lines: int
    lines_added: int
    lines_combined: int
    lines_capped: list[strawberry.ID]

    @classmethod
    def from_report(cls, report: MergeReport) -> CartMergeReport:
        return cls(
            strategy=CartMergeStrategy(report.strategy),
            guest_lines=report.guest_lines,
            lines_added=report.lines_added,
            lines_combined=report.lines_combined,
            lines_capped=[strawberry.ID(str(pid)) for pid in report.lines_capped],
        )


async def build_cart(ctx: RequestContext, contents: CartContents | None) -> Cart:
    if contents is None or not contents.lines:
        return Cart(lines=[], total_quantity=0, subtotal_cents=0, currency="USD",
                    updated_at=contents.updated_at if contents else None)
    records = await ctx.products.load_many(list(contents.lines))
    lines = [
        CartLine(product=Product.from_record(record), quantity=quantity,
                 line_total_cents=record.price_cents * quantity)
        for record, quantity in zip(records, contents.lines.values(), strict=True)
        if record is not None
    ]
    return Cart(
        lines=lines,
        total_quantity=sum(line.quantity for line in lines),
        subtotal_cents=sum(line.line_total_cents for line in lines),
        currency=lines[0].product.currency if lines else "USD",
        updated_at=contents.updated_at,
    )
