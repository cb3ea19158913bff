"""Mutation payloads: the object on success, or `errors` and a null object."""

from __future__ import annotations

import strawberry

from schema.carts import Cart, CartMergeReport
from schema.errors import UserError
from schema.types import Customer, Product


@strawberry.type(description="What `register` and `login` return: a bearer token and the customer, or `errors`.")
class AuthPayload:
    token: str | None = strawberry.field(
        default=None,
        description=(
            "A bearer token: send it as `Authorization: Bearer <token>` (over WebSocket, in the `connection_init` "
            "payload). It lasts 14 days by default, or until `logout`. Null when `errors` is not empty."
        ),
    )
    customer: Customer | None = strawberry.field(
        default=None, description="The signed-in customer; null when `errors` is not empty."
    )
    cart: Cart | None = strawberry.field(
        default=None,
        description="The customer's cart, with the guest cart attached; null when `errors` is not empty.",
    )
    cart_merge: CartMergeReport | None = strawberry.field(
        default=None,
        description="What happened to the guest cart; null when the request carried no valid `X-Session-Id`.",
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=(
            "Expected failures; empty on success. register: INVALID_INPUT, EMAIL_TAKEN. "
            "login: INVALID_INPUT, INVALID_CREDENTIALS, RATE_LIMITED."
        ),
    )


@strawberry.type(description="What the staff catalogue mutations return: the product, or `errors`.")
class ProductPayload:
    product: Product | None = strawberry.field(
        default=None, description="The product as it is now; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=(
            "Expected failures; empty on success: NOT_AUTHENTICATED, FORBIDDEN (not staff), INVALID_INPUT, "
            "PRODUCT_NOT_FOUND."
        ),
    )


@strawberry.type(description="What the cart mutations return: the cart after the change, or `errors`.")
class CartPayload:
    cart: Cart | None = strawberry.field(
        default=None, description="The caller's cart after the change; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=(
            "Expected failures; empty on success: NOT_AUTHENTICATED (no guest session nor sign-in: call "
            "`startSession`), INVALID_INPUT, PRODUCT_NOT_FOUND."
        ),
    )
