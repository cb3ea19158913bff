"""Object types of the contract. Each wraps a record from db/ and resolves the live parts."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from db.accounts import CustomerRecord
from db.catalog import ProductRecord
from resolvers.context import RequestContext


@strawberry.type
class PageInfo:
    end_cursor: str | None
    has_next_page: bool


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    max_per_customer: int | None = strawberry.field(
        description="drop limit: units one customer may buy across all orders; null = none"
    )
    image_url: str | None

    @strawberry.field(description="units that can still be bought right now (live)")
    async def available(self, info: Info[RequestContext, None]) -> int:
        value = await info.context.available.load(int(self.id))
        return max(0, value or 0)

    @classmethod
    def from_record(cls, record: ProductRecord) -> Product:
        return cls(
            id=strawberry.ID(str(record.id)),
            sku=record.sku,
            name=record.name,
            description=record.description,
            price_cents=record.price_cents,
            currency=record.currency,
            max_per_customer=record.max_per_customer,
            image_url=record.image_url,
        )


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo


@strawberry.type
class GuestSession:
    session_id: str


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str
    is_staff: bool

    @classmethod
    def from_record(cls, record: CustomerRecord) -> Customer:
        return cls(id=strawberry.ID(str(record.id)), email=record.email, is_staff=record.is_staff)
