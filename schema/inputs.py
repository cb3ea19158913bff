"""Input types of the contract."""

from __future__ import annotations

import strawberry


@strawberry.input(description="One line of `placeOrder`.")
class OrderLineInput:
    product_id: strawberry.ID = strawberry.field(description="The product to buy.")
    quantity: int = strawberry.field(
        description="Units to buy, 1-100. Lines of the same product are added together, at most 100 units in all."
    )


@strawberry.input(description="A new product, for `productCreate`.")
class ProductInput:
    sku: str = strawberry.field(
        description=(
            "Stock-keeping unit, unique: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit. "
            "A sku already in use is INVALID_INPUT with `field` sku."
        )
    )
    name: str = strawberry.field(description="Display name, 1-200 characters.")
    description: str | None = strawberry.field(default="", description="Plain-text description, up to 5000 characters.")
    price_cents: int = strawberry.field(description="Price of one unit in cents of `currency`, 0 to 100,000,000.")
    currency: str | None = strawberry.field(
        default="USD", description="Three-letter ISO 4217 code, e.g. USD; it cannot be changed afterwards."
    )
    stock: int = strawberry.field(
        description="Units on hand to sell, 0 to 10,000,000; change it later with `stockAdjust`."
    )
    max_per_customer: int | None = strawberry.field(
        default=None,
        description="The most units one customer may buy over all of their orders, 1 to 10,000,000; null for no limit.",
    )
    image_url: str | None = strawberry.field(
        default=None,
        description="An http(s) URL or a path starting with '/', up to 2048 characters; null or empty for none.",
    )


@strawberry.input(
    description=(
        "Changes to a product, for `productUpdate`: a field left out stays as it is. Stock changes go through "
        "`stockAdjust`; the currency cannot change."
    )
)
class ProductUpdateInput:
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Display name, 1-200 characters; null is refused."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="Plain-text description, up to 5000 characters; null empties it."
    )
    price_cents: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="Price of one unit in cents, 0 to 100,000,000; null is refused. Placed orders keep their price.",
    )
    max_per_customer: int | None = strawberry.field(
        default=strawberry.UNSET, description="Units one customer may buy, 1 to 10,000,000; null removes the limit."
    )
    image_url: str | None = strawberry.field(
        default=strawberry.UNSET, description="An http(s) URL or a path starting with '/'; null or empty removes it."
    )
