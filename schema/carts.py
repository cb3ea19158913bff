"""Cart types of the contract, built from a db cart with the products loaded once."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from db.carts import CartContents, MergeReport
from resolvers.context import RequestContext
from schema.types import Product


@strawberry.enum(
    description=(
        "What `login` does with the guest cart of the request's `X-Session-Id`. Whatever the strategy, the guest "
        "cart is empty afterwards and the change is atomic: two sign-ins at once lose no line."
    )
)
class CartMergeStrategy(Enum):
    MERGE = strawberry.enum_value(
        "MERGE",
        description=(
            "Add the guest cart to the customer's line by line: quantities of a product in both are added, capped "
            "at 100 units a line; a guest line that would make more than 50 lines is dropped. `linesCapped` names "
            "both kinds."
        ),
    )
    KEEP_CUSTOMER_CART = strawberry.enum_value(
        "KEEP_CUSTOMER_CART", description="Keep the customer's cart as it is and drop the guest cart."
    )
    REPLACE_WITH_GUEST_CART = strawberry.enum_value(
        "REPLACE_WITH_GUEST_CART",
        description="Replace the customer's cart with the guest cart, unless the guest cart is empty.",
    )


@strawberry.type(description="One product in a cart, priced at the product's current price.")
class CartLine:
    product: Product = strawberry.field(description="The product.")
    quantity: int = strawberry.field(description="Units in the cart, 1-100.")
    line_total_cents: int = strawberry.field(
        description="`quantity` times the product's current price, in cents of its currency."
    )


@strawberry.type(
    description=(
        "The caller's cart: a guest session's or a signed-in customer's (the same on every device of the "
        "customer). A cart holds no stock: units are reserved only by `checkout`."
    )
)
class Cart:
    lines: list[CartLine] = strawberry.field(description="The cart's lines, at most 50.")
    total_quantity: int = strawberry.field(description="The sum of the lines' quantities.")
    subtotal_cents: int = strawberry.field(description="The sum of the lines' totals in cents, at current prices.")
    currency: str = strawberry.field(description="ISO 4217 code of the amounts; USD for an empty cart.")
    updated_at: datetime | None = strawberry.field(
        description="When the cart last changed (UTC); null for a cart never used."
    )


@strawberry.type(description="What `login` did with the guest cart.")
class CartMergeReport:
    strategy: CartMergeStrategy = strawberry.field(description="The strategy applied.")
    guest_lines: int = strawberry.field(description="Lines the guest cart held before the sign-in.")
    lines_added: int = strawberry.field(
        description=(
            "Guest lines that became new lines of the customer's cart (with REPLACE_WITH_GUEST_CART, every line "
            "of the guest cart)."
        )
    )
    lines_combined: int = strawberry.field(
        description="Guest lines whose product the customer's cart already held, their quantities added (MERGE)."
    )
    lines_capped: list[strawberry.ID] = strawberry.field(
        description=(
            "Products of guest lines not kept whole (MERGE): capped at 100 units a line, or dropped because the "
            "customer's cart already held 50 lines."
        )
    )

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
