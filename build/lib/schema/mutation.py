"""The Mutation root: each field runs a resolver and turns domain errors into `errors`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import strawberry
from strawberry.types import Info

from db.carts import CartContents
from resolvers import auth, carts, orders, products
from resolvers.context import RequestContext
from schema.carts import CartMergeReport, CartMergeStrategy, build_cart
from schema.errors import payload_or_errors
from schema.inputs import OrderLineInput, ProductInput, ProductUpdateInput
from schema.orders import CheckoutPayload, OrderPayload, build_order
from schema.payloads import AuthPayload, CartPayload, ProductPayload
from schema.types import Customer, GuestSession, Product

Ctx = Info[RequestContext, None]

_UPDATE_COLUMNS = {
    "name": "name",
    "description": "description",
    "price_cents": "price_cents",
    "max_per_customer": "max_per_customer",
    "image_url": "image_url",
}


async def _signed_in(info: Ctx, signing_in: Awaitable[auth.SignedIn]) -> AuthPayload:
    signed_in = await signing_in
    return AuthPayload(
        token=signed_in.token,
        customer=Customer.from_record(signed_in.customer),
        cart=await build_cart(info.context, signed_in.cart),
        cart_merge=CartMergeReport.from_report(signed_in.merge) if signed_in.merge else None,
    )


async def _cart_payload(info: Ctx, changing: Awaitable[CartContents]) -> CartPayload:
    return CartPayload(cart=await build_cart(info.context, await changing))


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def start_session(self, info: Ctx) -> GuestSession:
        return GuestSession(session_id=await auth.start_session(info.context))

    @strawberry.mutation
    async def register(self, info: Ctx, email: str, password: str) -> AuthPayload:
        return await payload_or_errors(AuthPayload, lambda: _signed_in(info, auth.register(info.context, email,
                                                                                           password)))

    @strawberry.mutation
    async def login(
        self, info: Ctx, email: str, password: str, cart_merge: CartMergeStrategy | None = CartMergeStrategy.MERGE
    ) -> AuthPayload:
        strategy = (cart_merge or CartMergeStrategy.MERGE).value
        return await payload_or_errors(
            AuthPayload, lambda: _signed_in(info, auth.login(info.context, email, password, strategy))
        )

    @strawberry.mutation(description="revokes the bearer token of this request")
    async def logout(self, info: Ctx) -> bool:
        return await auth.logout(info.context)

    @strawberry.mutation(description="staff only")
    async def product_create(self, info: Ctx, input: ProductInput) -> ProductPayload:
        async def body() -> ProductPayload:
            record = await products.create(
                info.context,
                sku=input.sku,
                name=input.name,
                description=input.description or "",
                price_cents=input.price_cents,
                currency=input.currency or "USD",
                stock=input.stock,
                max_per_customer=input.max_per_customer,
                image_url=input.image_url,
            )
            return ProductPayload(product=Product.from_record(record))

        return await payload_or_errors(ProductPayload, body)

    @strawberry.mutation(description="staff only")
    async def product_update(self, info: Ctx, id: strawberry.ID, input: ProductUpdateInput) -> ProductPayload:
        async def body() -> ProductPayload:
            changes: dict[str, Any] = {
                column: getattr(input, attr)
                for attr, column in _UPDATE_COLUMNS.items()
                if getattr(input, attr) is not strawberry.UNSET
            }
            record = await products.update(info.context, id, changes)
            return ProductPayload(product=Product.from_record(record))

        return await payload_or_errors(ProductPayload, body)

    @strawberry.mutation(description="staff only: restock (+) or write off (-)")
    async def stock_adjust(self, info: Ctx, product_id: strawberry.ID, delta: int) -> ProductPayload:
        async def body() -> ProductPayload:
            record = await products.adjust_stock(info.context, product_id, delta)
            return ProductPayload(product=Product.from_record(record))

        return await payload_or_errors(ProductPayload, body)

    @strawberry.mutation(description="adds to an existing line")
    async def cart_add_line(self, info: Ctx, product_id: strawberry.ID, quantity: int) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.add_line(info.context, product_id, quantity))
        )

    @strawberry.mutation(description="sets; 0 removes the line")
    async def cart_update_line(self, info: Ctx, product_id: strawberry.ID, quantity: int) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.update_line(info.context, product_id, quantity))
        )

    @strawberry.mutation
    async def cart_remove_line(self, info: Ctx, product_id: strawberry.ID) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.remove_line(info.context, product_id))
        )

    @strawberry.mutation
    async def cart_clear(self, info: Ctx) -> CartPayload:
        return await payload_or_errors(CartPayload, lambda: _cart_payload(info, carts.clear(info.context)))

    @strawberry.mutation(description="the caller's cart -> an order")
    async def checkout(self, info: Ctx, idempotency_key: str) -> CheckoutPayload:
        async def body() -> CheckoutPayload:
            return CheckoutPayload(order=build_order(await orders.checkout(info.context, idempotency_key)))

        return await payload_or_errors(CheckoutPayload, body)

    @strawberry.mutation(description="buy now")
    async def place_order(self, info: Ctx, lines: list[OrderLineInput], idempotency_key: str) -> CheckoutPayload:
        async def body() -> CheckoutPayload:
            record = await orders.place_order(
                info.context, [(line.product_id, line.quantity) for line in lines], idempotency_key
            )
            return CheckoutPayload(order=build_order(record))

        return await payload_or_errors(CheckoutPayload, body)

    @strawberry.mutation(description="only while PENDING")
    async def cancel_order(self, info: Ctx, id: strawberry.ID) -> OrderPayload:
        async def body() -> OrderPayload:
            return OrderPayload(order=build_order(await orders.cancel(info.context, id)))

        return await payload_or_errors(OrderPayload, body)
