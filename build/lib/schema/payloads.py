"""Mutation payloads: the object on success, or `errors` and a null object."""

from __future__ import annotations

import strawberry

from schema.carts import Cart, CartMergeReport
from schema.errors import UserError
from schema.types import Customer, Product


@strawberry.type
class AuthPayload:
    token: str | None = None
    customer: Customer | None = None
    cart: Cart | None = None
    cart_merge: CartMergeReport | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProductPayload:
    product: Product | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CartPayload:
    cart: Cart | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
