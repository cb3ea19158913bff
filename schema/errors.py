"""UserError and the one place where domain exceptions become typed errors in payloads."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import TypeVar

import strawberry
from graphql import GraphQLError

from db.errors import RushcartError

log = logging.getLogger("rushcart.errors")


@strawberry.enum
class ErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    PRODUCT_NOT_FOUND = "PRODUCT_NOT_FOUND"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PURCHASE_LIMIT_EXCEEDED = "PURCHASE_LIMIT_EXCEEDED"
    EMPTY_CART = "EMPTY_CART"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: str | None = None
    product_id: strawberry.ID | None = None
    available: int | None = None

    @classmethod
    def from_exception(cls, exc: RushcartError) -> UserError:
        return cls(
            code=ErrorCode(exc.code),
            message=exc.message,
            field=exc.field,
            product_id=strawberry.ID(str(exc.product_id)) if exc.product_id is not None else None,
            available=exc.available,
        )


P = TypeVar("P")


async def payload_or_errors(payload: type[P], body: Callable[[], Awaitable[P]]) -> P:
    """Run a mutation body; an expected failure becomes the payload with `errors` and no object."""
    try:
        return await body()
    except RushcartError as exc:
        log.debug("user error %r", exc)
        return payload(errors=[UserError.from_exception(exc)])  # type: ignore[call-arg]


@asynccontextmanager
async def refusals_as_errors() -> AsyncIterator[None]:
    """In a subscription: an expected refusal ends the stream as a GraphQL error whose
    `extensions.code` is the code a UserError would carry ("sign in first" vs "not your order")."""
    try:
        yield
    except RushcartError as exc:
        raise GraphQLError(exc.message, original_error=exc, extensions={"code": ErrorCode(exc.code).value}) from exc


def is_refusal(error: GraphQLError) -> bool:
    """An expected refusal (a domain error), logged as one line rather than with a traceback."""
    return isinstance(error.original_error, RushcartError)
