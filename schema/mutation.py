"""The Mutation root: each field runs a resolver and turns domain errors into `errors`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from db.carts import CartContents
from resolvers import auth, carts, drops, orders, products
from resolvers.context import RequestContext
from schema.carts import CartMergeReport, CartMergeStrategy, build_cart
from schema.drops import Drop, DropInput, DropLine, DropLinePayload, DropPayload
from schema.errors import payload_or_errors
from schema.inputs import OrderLineInput, ProductInput, ProductUpdateInput
from schema.orders import CheckoutPayload, OrderPayload, build_order
from schema.payloads import AuthPayload, CartPayload, ProductPayload
from schema.types import Customer, GuestSession, Product

Ctx = Info[RequestContext, None]

ProductId = Annotated[strawberry.ID, strawberry.argument(description="The product's id.")]
IdempotencyKey = Annotated[
    str,
    strawberry.argument(
        description=(
            "The client's id for this purchase, 1-128 letters, digits, '.', '_', ':' or '-'; make a new one for "
            "each purchase. Sending the same key again (after a timeout, say) returns the same order and reserves "
            "nothing more, for at least 24 hours; the same key with other lines is IDEMPOTENCY_KEY_REUSED. Keys "
            "are per customer."
        )
    ),
]
Email = Annotated[str, strawberry.argument(description="The email address, up to 254 characters; case is ignored.")]

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


@strawberry.type(
    description=(
        "Changes. Each answers a payload whose `errors` lists expected failures (with HTTP 200 and the payload's "
        "object null); top-level GraphQL errors mean a malformed request or a fault of the server."
    )
)
class Mutation:
    @strawberry.mutation(
        description=(
            "Start a guest session, so a shopper can fill a cart before signing in. A browser also gets the id as "
            "the HttpOnly cookie `sid`."
        )
    )
    async def start_session(self, info: Ctx) -> GuestSession:
        return GuestSession(session_id=await auth.start_session(info.context))

    @strawberry.mutation(
        description=(
            "Create a customer account and sign in. The guest cart of the request's `X-Session-Id`, if any, is "
            "merged into the new account's cart. Errors: INVALID_INPUT, EMAIL_TAKEN."
        )
    )
    async def register(
        self,
        info: Ctx,
        email: Email,
        password: Annotated[str, strawberry.argument(description="The password, 8-256 characters.")],
    ) -> AuthPayload:
        return await payload_or_errors(AuthPayload, lambda: _signed_in(info, auth.register(info.context, email,
                                                                                           password)))

    @strawberry.mutation(
        description=(
            "Sign in and get a bearer token. The guest cart of the request's `X-Session-Id`, if any, is attached "
            "to the customer's cart as `cartMerge` says. Errors: INVALID_INPUT, INVALID_CREDENTIALS, RATE_LIMITED "
            "(by default after ten failed tries for one email within five minutes)."
        )
    )
    async def login(
        self,
        info: Ctx,
        email: Email,
        password: Annotated[str, strawberry.argument(description="The account's password.")],
        cart_merge: Annotated[
            CartMergeStrategy | None,
            strawberry.argument(description="What to do with the guest cart; MERGE by default."),
        ] = CartMergeStrategy.MERGE,
    ) -> AuthPayload:
        # The member's name is the strategy's name (its value is typed as the enum_value wrapper).
        strategy = (cart_merge or CartMergeStrategy.MERGE).name
        return await payload_or_errors(
            AuthPayload, lambda: _signed_in(info, auth.login(info.context, email, password, strategy))
        )

    @strawberry.mutation(
        description=(
            "Revoke the bearer token of this request, in every server process at once. True if a token was "
            "revoked; false if the request carried none or it had already expired or been revoked."
        )
    )
    async def logout(self, info: Ctx) -> bool:
        return await auth.logout(info.context)

    @strawberry.mutation(
        description=(
            "Staff only: add a product to the catalogue. Errors: NOT_AUTHENTICATED, FORBIDDEN, INVALID_INPUT "
            "(a sku already in use names `field` sku)."
        )
    )
    async def product_create(
        self, info: Ctx, input: Annotated[ProductInput, strawberry.argument(description="The new product.")]
    ) -> ProductPayload:
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

    @strawberry.mutation(
        description=(
            "Staff only: change a product's catalogue fields. Errors: NOT_AUTHENTICATED, FORBIDDEN, INVALID_INPUT, "
            "PRODUCT_NOT_FOUND."
        )
    )
    async def product_update(
        self,
        info: Ctx,
        id: Annotated[strawberry.ID, strawberry.argument(description="The product's id.")],
        input: Annotated[
            ProductUpdateInput, strawberry.argument(description="The fields to change; the others stay as they are.")
        ],
    ) -> ProductPayload:
        async def body() -> ProductPayload:
            changes: dict[str, Any] = {
                column: getattr(input, attr)
                for attr, column in _UPDATE_COLUMNS.items()
                if getattr(input, attr) is not strawberry.UNSET
            }
            record = await products.update(info.context, id, changes)
            return ProductPayload(product=Product.from_record(record))

        return await payload_or_errors(ProductPayload, body)

    @strawberry.mutation(
        description=(
            "Staff only: restock (+) or write off (-) units of a product. A write-off may take only units not held "
            "by orders; asking for more is INVALID_INPUT with `field` delta and `available` the units it may take. "
            "Errors: NOT_AUTHENTICATED, FORBIDDEN, INVALID_INPUT, PRODUCT_NOT_FOUND."
        )
    )
    async def stock_adjust(
        self,
        info: Ctx,
        product_id: ProductId,
        delta: Annotated[
            int,
            strawberry.argument(
                description="Units to add (positive) or write off (negative); not 0, at most 10,000,000 either way."
            ),
        ],
    ) -> ProductPayload:
        async def body() -> ProductPayload:
            record = await products.adjust_stock(info.context, product_id, delta)
            return ProductPayload(product=Product.from_record(record))

        return await payload_or_errors(ProductPayload, body)

    @strawberry.mutation(
        description=(
            "Add units of a product to the caller's cart (a guest session's or a signed-in customer's), on top of "
            "any line it has. A line holds at most 100 units and a cart at most 50 lines; a cart reserves no "
            "stock. Errors: NOT_AUTHENTICATED, INVALID_INPUT, PRODUCT_NOT_FOUND."
        )
    )
    async def cart_add_line(
        self,
        info: Ctx,
        product_id: ProductId,
        quantity: Annotated[int, strawberry.argument(description="Units to add, 1-100.")],
    ) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.add_line(info.context, product_id, quantity))
        )

    @strawberry.mutation(
        description=(
            "Set the quantity of a product's line in the caller's cart; 0 removes the line. Errors: "
            "NOT_AUTHENTICATED, INVALID_INPUT, PRODUCT_NOT_FOUND."
        )
    )
    async def cart_update_line(
        self,
        info: Ctx,
        product_id: ProductId,
        quantity: Annotated[int, strawberry.argument(description="The line's new quantity, 0-100; 0 removes it.")],
    ) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.update_line(info.context, product_id, quantity))
        )

    @strawberry.mutation(
        description=(
            "Remove a product's line from the caller's cart; a product not in the cart is no error. Errors: "
            "NOT_AUTHENTICATED, INVALID_INPUT."
        )
    )
    async def cart_remove_line(self, info: Ctx, product_id: ProductId) -> CartPayload:
        return await payload_or_errors(
            CartPayload, lambda: _cart_payload(info, carts.remove_line(info.context, product_id))
        )

    @strawberry.mutation(description="Remove every line from the caller's cart. Errors: NOT_AUTHENTICATED.")
    async def cart_clear(self, info: Ctx) -> CartPayload:
        return await payload_or_errors(CartPayload, lambda: _cart_payload(info, carts.clear(info.context)))

    @strawberry.mutation(
        description=(
            "Signed-in customers only: buy what is in the cart. Answers at once with the order PENDING and its "
            "units already reserved (final, not a hold to confirm): every line or none, each within the product's "
            "`maxPerCustomer`. A successful checkout empties the cart. A product of a live drop needs the caller's "
            "pass (see `joinDrop`). Errors: NOT_AUTHENTICATED, INVALID_INPUT, EMPTY_CART, PRODUCT_NOT_FOUND, "
            "OUT_OF_STOCK, PURCHASE_LIMIT_EXCEEDED, IDEMPOTENCY_KEY_REUSED, NOT_YOUR_TURN, TRY_AGAIN (send it "
            "again with the same key)."
        )
    )
    async def checkout(self, info: Ctx, idempotency_key: IdempotencyKey) -> CheckoutPayload:
        async def body() -> CheckoutPayload:
            return CheckoutPayload(order=build_order(await orders.checkout(info.context, idempotency_key)))

        return await payload_or_errors(CheckoutPayload, body)

    @strawberry.mutation(
        description=(
            "Signed-in customers only: buy now, without the cart. Answers at once with the order PENDING and its "
            "units already reserved (final, not a hold to confirm): every line or none, each within the product's "
            "`maxPerCustomer`. A product of a live drop needs the caller's pass (see `joinDrop`). Errors: "
            "NOT_AUTHENTICATED, INVALID_INPUT, PRODUCT_NOT_FOUND, OUT_OF_STOCK, PURCHASE_LIMIT_EXCEEDED, "
            "IDEMPOTENCY_KEY_REUSED, NOT_YOUR_TURN, TRY_AGAIN (send it again with the same key)."
        )
    )
    async def place_order(
        self,
        info: Ctx,
        lines: Annotated[
            list[OrderLineInput],
            strawberry.argument(
                description="What to buy: 1-50 products, 1-100 units each, all priced in one currency."
            ),
        ],
        idempotency_key: IdempotencyKey,
    ) -> CheckoutPayload:
        async def body() -> CheckoutPayload:
            record = await orders.place_order(
                info.context, [(line.product_id, line.quantity) for line in lines], idempotency_key
            )
            return CheckoutPayload(order=build_order(record))

        return await payload_or_errors(CheckoutPayload, body)

    @strawberry.mutation(
        description=(
            "Cancel a PENDING order: its units go back to stock and to the customer's allowance, exactly once. "
            "Its customer (reason CUSTOMER) or staff (reason STAFF) may cancel it. Errors: NOT_AUTHENTICATED, "
            "ORDER_NOT_FOUND, ORDER_NOT_CANCELLABLE."
        )
    )
    async def cancel_order(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="The order's id.")]
    ) -> OrderPayload:
        async def body() -> OrderPayload:
            return OrderPayload(order=build_order(await orders.cancel(info.context, id)))

        return await payload_or_errors(OrderPayload, body)

    @strawberry.mutation(
        description=(
            "Staff only: put products into a drop, sold through a waiting line from `startsAt` on. Until the drop "
            "ends, its products are sold only to shoppers holding a pass. Errors: NOT_AUTHENTICATED, FORBIDDEN, "
            "INVALID_INPUT (`startsAt` not in the future, no admission policy, a product already in a drop that has "
            "not ended, with `productId`), PRODUCT_NOT_FOUND."
        )
    )
    async def drop_create(
        self, info: Ctx, input: Annotated[DropInput, strawberry.argument(description="The new drop.")]
    ) -> DropPayload:
        async def body() -> DropPayload:
            record = await drops.create(
                info.context, name=input.name, starts_at=input.starts_at, product_ids=list(input.product_ids),
                admit_per_second=input.admit_per_second, max_active=input.max_active,
                pass_ttl_seconds=input.pass_ttl_seconds,
            )
            return DropPayload(drop=Drop.from_record(record))

        return await payload_or_errors(DropPayload, body)

    @strawberry.mutation(
        description=(
            "Staff only: end a drop. Its line closes (every shopper in it is told ENDED) and its products sell as "
            "any other. Ending it again changes nothing. Errors: NOT_AUTHENTICATED, FORBIDDEN, DROP_NOT_FOUND."
        )
    )
    async def drop_end(
        self, info: Ctx, id: Annotated[strawberry.ID, strawberry.argument(description="The drop's id.")]
    ) -> DropPayload:
        async def body() -> DropPayload:
            return DropPayload(drop=Drop.from_record(await drops.end(info.context, id)))

        return await payload_or_errors(DropPayload, body)

    @strawberry.mutation(
        description=(
            "Take a place in a drop's line, as the signed-in customer or else the guest session (`X-Session-Id`). "
            "One place per customer or session: joining again returns the same place, so a reload loses nothing. "
            "Before the start, everyone who joined is put in a random order at the start; after it, places go in "
            "order of arrival. A client address may take a limited number of new places a minute "
            "(DROP_JOINS_PER_MINUTE). Follow the place with the `dropLine` subscription. Errors: NOT_AUTHENTICATED, "
            "DROP_NOT_FOUND, RATE_LIMITED."
        )
    )
    async def join_drop(
        self, info: Ctx, drop_id: Annotated[strawberry.ID, strawberry.argument(description="The drop's id.")]
    ) -> DropLinePayload:
        async def body() -> DropLinePayload:
            return DropLinePayload(line=DropLine.from_view(await drops.join(info.context, drop_id)))

        return await payload_or_errors(DropLinePayload, body)
