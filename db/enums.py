"""The domain's fixed vocabularies, defined once; `schema/` exposes them to GraphQL as they are."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Statuses move only PENDING -> PAID or PENDING -> CANCELLED; PAID and CANCELLED are final."""

    PENDING = "PENDING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


class CancelReason(StrEnum):
    EXPIRED = "EXPIRED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    CUSTOMER = "CUSTOMER"
    STAFF = "STAFF"


class ErrorCode(StrEnum):
    """What a refused request was refused for; db.errors has one exception per code."""

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
    DROP_NOT_FOUND = "DROP_NOT_FOUND"
    NOT_YOUR_TURN = "NOT_YOUR_TURN"
    TRY_AGAIN = "TRY_AGAIN"


class DropLineStatus(StrEnum):
    """Where a shopper stands in a drop's line."""

    WAITING = "WAITING"
    ADMITTED = "ADMITTED"
    PURCHASED = "PURCHASED"
    PASS_EXPIRED = "PASS_EXPIRED"
    LIKELY_SOLD_OUT = "LIKELY_SOLD_OUT"
    SOLD_OUT = "SOLD_OUT"
    ENDED = "ENDED"
    NOT_IN_LINE = "NOT_IN_LINE"
