"""UserError and the one place where domain exceptions become typed errors in payloads."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import strawberry
from graphql import GraphQLError

from db.enums import ErrorCode
from db.errors import RushcartError, TryAgain
from db.state_redis import UNREACHABLE
from schema.strawberry_internals import describe_enum

log = logging.getLogger("rushcart.errors")

STORE_UNREACHABLE = TryAgain("the store cannot be reached right now (a restart or a failover); send the request "
                             "again, an order with the same idempotency key (it answers the order if it was made)")


describe_enum(
    ErrorCode,
    (
        "Why a request was refused. Expected failures come back in a payload's `errors` with HTTP 200 and the "
        "payload's object null; each mutation's description lists the codes it can return."
    ),
    {
        "INVALID_INPUT": (
            "An argument or input field is out of range or malformed. `field` names it (for list items with their "
            "index, e.g. `lines[0].quantity`) and `message` says what is allowed."
        ),
        "PRODUCT_NOT_FOUND": "No product has this id; `productId` names it when it is known.",
        "OUT_OF_STOCK": (
            "Too few units are left for a line: `productId` names the first such line and `available` how many units "
            "of it are left. Nothing was reserved."
        ),
        "PURCHASE_LIMIT_EXCEEDED": (
            "A line would take the customer past the product's `maxPerCustomer`, counted over all of their orders that"
            " are not cancelled. `productId` names the line; `remainingAllowance` (and `available`, which carries the "
            "same number) is how many more units this customer may buy of it: their own allowance, not the stock. "
            "Nothing was reserved."
        ),
        "EMPTY_CART": "`checkout` of a cart without lines.",
        "NOT_AUTHENTICATED": (
            "The operation needs a signed-in customer (or, for carts, a guest session) and the request has no valid "
            "bearer token or session id: none was sent, or the token expired or was revoked."
        ),
        "FORBIDDEN": "Signed in but not allowed: changing the catalogue is for staff only.",
        "EMAIL_TAKEN": "`register` with an email that has an account.",
        "INVALID_CREDENTIALS": "`login` with an unknown email or a wrong password (which of the two is not said).",
        "ORDER_NOT_FOUND": "No order with this id belongs to the caller (staff see every order).",
        "ORDER_NOT_CANCELLABLE": (
            "The order is not PENDING any more: it was paid or cancelled, possibly while this request ran."
        ),
        "IDEMPOTENCY_KEY_REUSED": (
            "The customer sent this `idempotencyKey` before with a different request (other lines, or the other of "
            "`checkout` and `placeOrder`). Nothing was reserved; use a new key for a new purchase."
        ),
        "RATE_LIMITED": (
            "Too many failed sign-ins for this email (by default ten within five minutes); try again later. Also: "
            "too many new guest sessions or new places in drop lines from one client address."
        ),
        "DROP_NOT_FOUND": "No drop has this id.",
        "NOT_YOUR_TURN": (
            "A line is a product of a live drop and the caller holds no usable pass for it: not in the line, still "
            "waiting (`position` says where), the pass ran out, was used, or is in use by another order right now. "
            "`productId` names the line. Nothing was reserved."
        ),
        "TRY_AGAIN": (
            "The request could not be completed now; send it again, an order with the same `idempotencyKey` (it "
            "then answers the one order, if one was made). Another request with the same key is still under way; "
            "or (on a cluster) a step of the reservation did not finish in time and was undone; or a replica could "
            "not confirm the change in time (REDIS_WAIT_REPLICAS); or the store cannot be reached (a restart or "
            "a failover), which any mutation may meet."
        ),
    },
)


@strawberry.type(
    description=(
        "An expected failure, listed in a payload's `errors`. Branch on `code`; the other fields add detail "
        "for some codes and are null otherwise."
    )
)
class UserError:
    code: ErrorCode = strawberry.field(description="What went wrong; each code's description says what it sets.")
    message: str = strawberry.field(
        description="An explanation in English, fit to show a person. Its wording may change: branch on `code`."
    )
    field: str | None = strawberry.field(
        default=None,
        description=(
            "For INVALID_INPUT: the argument or input field at fault by its GraphQL name, with the index for list "
            "items (`lines[2].quantity`). Null when no single field is at fault."
        ),
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "The product the error is about: the failing line for OUT_OF_STOCK and PURCHASE_LIMIT_EXCEEDED, the "
            "unknown product for PRODUCT_NOT_FOUND, the line at fault for some INVALID_INPUT. Null otherwise."
        ),
    )
    available: int | None = strawberry.field(
        default=None,
        description=(
            "A number of units whose meaning depends on `code`. OUT_OF_STOCK: units of `productId` left in stock. "
            "PURCHASE_LIMIT_EXCEEDED: units this customer may still buy of `productId`, which is their remaining "
            "allowance and not the stock (the same number as `remainingAllowance`, the clearer field to read). "
            "INVALID_INPUT from `stockAdjust`: the units a write-off may take (those not held by orders). "
            "Null otherwise."
        ),
    )
    remaining_allowance: int | None = strawberry.field(
        default=None,
        description=(
            "For PURCHASE_LIMIT_EXCEEDED: how many more units of `productId` this customer may buy under its "
            "`maxPerCustomer`, counted over all of their orders that are not cancelled (0 when used up; "
            "cancelling an order gives its units back). Null for every other code."
        ),
    )

    position: int | None = strawberry.field(
        default=None,
        description=(
            "For NOT_YOUR_TURN: the caller's position in the drop's line (1 = next to be admitted); null when they "
            "are not waiting in it (not joined, the drop not started, their pass ran out or was used). Null for "
            "every other code."
        ),
    )

    @classmethod
    def from_exception(cls, exc: RushcartError) -> UserError:
        code = ErrorCode(exc.code)
        return cls(
            code=code,
            message=exc.message,
            field=exc.field,
            product_id=strawberry.ID(str(exc.product_id)) if exc.product_id is not None else None,
            available=exc.available,
            # The contract's `available` means stock for every other code; this field is never read as stock.
            remaining_allowance=exc.available if code is ErrorCode.PURCHASE_LIMIT_EXCEEDED else None,
            position=exc.position,
        )


P = TypeVar("P")


async def payload_or_errors(payload: type[P], body: Callable[[], Awaitable[P]]) -> P:
    """Run a mutation body; an expected failure becomes the payload with `errors` and no object."""
    try:
        return await body()
    except RushcartError as exc:
        log.debug("user error %r", exc)
        return payload(errors=[UserError.from_exception(exc)])  # type: ignore[call-arg]
    except UNREACHABLE as exc:
        # Redis restarting, or a shard failing over: retryable. An order sent again with its
        # idempotency key answers the order it made, if it did; a cancellation applies once.
        log.warning("store unreachable during a mutation: %s", exc)
        return payload(errors=[UserError.from_exception(STORE_UNREACHABLE)])  # type: ignore[call-arg]


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
