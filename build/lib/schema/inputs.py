"""Input types of the contract."""

from __future__ import annotations

import strawberry


@strawberry.input
class OrderLineInput:
    product_id: strawberry.ID
    quantity: int


@strawberry.input
class ProductInput:
    sku: str
    name: str
    description: str | None = ""
    price_cents: int
    currency: str | None = "USD"
    stock: int
    max_per_customer: int | None = None
    image_url: str | None = None


@strawberry.input
class ProductUpdateInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price_cents: int | None = strawberry.UNSET
    max_per_customer: int | None = strawberry.UNSET
    image_url: str | None = strawberry.UNSET
