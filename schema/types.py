"""Object types of the contract. Each wraps a record from db/ and resolves the live parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from db.accounts import CustomerRecord
from db.catalog import ProductRecord
from resolvers.context import RequestContext

if TYPE_CHECKING:
    from schema.drops import Drop


@strawberry.type(description="Where a page of a list ends and whether more follow.")
class PageInfo:
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last item: pass it as `after` for the next page. Null for an empty page."
    )
    has_next_page: bool = strawberry.field(description="True when more items follow this page.")


@strawberry.type(
    description=(
        "A product of the catalogue. Prices are integer cents of the product's currency; `available` is read live "
        "at each request."
    )
)
class Product:
    id: strawberry.ID = strawberry.field(description="The product's id.")
    sku: str = strawberry.field(
        description="Stock-keeping unit, unique: 1-64 letters, digits, '.', '_' or '-', first a letter or digit."
    )
    name: str = strawberry.field(description="Display name, 1-200 characters.")
    description: str = strawberry.field(description="Plain-text description, up to 5000 characters; empty if none.")
    price_cents: int = strawberry.field(
        description="Price of one unit in cents (minor units of `currency`), an integer. Orders keep the price they "
        "were placed at."
    )
    currency: str = strawberry.field(description="Three-letter ISO 4217 code of `priceCents`, e.g. USD.")
    max_per_customer: int | None = strawberry.field(
        description=(
            "Drop limit: the most units one customer may buy of this product, counted over all of their orders "
            "that are not cancelled (cancelling gives the units back). Null means no limit."
        )
    )
    image_url: str | None = strawberry.field(
        description="The product's image: an http(s) URL or a path on this server. Null if none."
    )

    @strawberry.field(
        description=(
            "Units that can still be bought right now, read live: the stock minus what PENDING orders hold. Never "
            "negative and never counts a unit twice. Subscribe to `productStock` to follow it."
        )
    )
    async def available(self, info: Info[RequestContext, None]) -> int:
        value = await info.context.available.load(int(self.id))
        return max(0, value or 0)

    @strawberry.field(
        description=(
            "The live drop this product is sold through (a pass is needed to buy it until the drop ends); null "
            "when it is in none."
        )
    )
    async def drop(self, info: Info[RequestContext, None]) -> Annotated[Drop, strawberry.lazy("schema.drops")] | None:
        from schema.drops import Drop

        record = await info.context.product_drops.load(int(self.id))
        return Drop.from_record(record) if record else None

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


@strawberry.type(description="One product in a page of `products`.")
class ProductEdge:
    cursor: str = strawberry.field(description="This product's place in the list: pass it as `after` to go on from it.")
    node: Product = strawberry.field(description="The product.")


@strawberry.type(description="A page of the catalogue, in order of product id.")
class ProductConnection:
    edges: list[ProductEdge] = strawberry.field(description="The products of this page, at most `first` of them.")
    page_info: PageInfo = strawberry.field(description="Where this page ends and whether more follow.")


@strawberry.type(description="A guest session: a cart for a shopper who has not signed in.")
class GuestSession:
    session_id: str = strawberry.field(
        description=(
            "Send it as the `X-Session-Id` header (a browser also gets it as the HttpOnly cookie `sid`). "
            "It lapses after 30 days without use by default; an id the server did not issue is refused."
        )
    )


@strawberry.type(description="A customer account.")
class Customer:
    id: strawberry.ID = strawberry.field(description="The customer's id.")
    email: str = strawberry.field(description="The sign-in email, lower-cased.")
    is_staff: bool = strawberry.field(
        description="True for staff, who may change the catalogue and read and cancel any order."
    )

    @classmethod
    def from_record(cls, record: CustomerRecord) -> Customer:
        return cls(id=strawberry.ID(str(record.id)), email=record.email, is_staff=record.is_staff)
