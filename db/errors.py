"""The domain's exceptions. The schema maps each to a `UserError` by its `code`, in one place.

    RushcartError
    ├── InvalidInput              INVALID_INPUT (field)
    ├── ProductNotFound           PRODUCT_NOT_FOUND
    ├── OutOfStock                OUT_OF_STOCK (product_id, available)
    ├── PurchaseLimitExceeded     PURCHASE_LIMIT_EXCEEDED (product_id, available)
    ├── EmptyCart                 EMPTY_CART
    ├── NotAuthenticated          NOT_AUTHENTICATED
    ├── Forbidden                 FORBIDDEN
    ├── EmailTaken                EMAIL_TAKEN
    ├── InvalidCredentials        INVALID_CREDENTIALS
    ├── OrderNotFound             ORDER_NOT_FOUND
    ├── OrderNotCancellable       ORDER_NOT_CANCELLABLE
    ├── IdempotencyKeyReused      IDEMPOTENCY_KEY_REUSED
    ├── RateLimited               RATE_LIMITED
    ├── DropNotFound              DROP_NOT_FOUND
    └── NotYourTurn               NOT_YOUR_TURN (product_id, position)
"""

from __future__ import annotations

from db.enums import ErrorCode


class RushcartError(Exception):
    code: ErrorCode = ErrorCode.INVALID_INPUT
    default_message = "invalid input"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        product_id: int | str | None = None,
        available: int | None = None,
        position: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.field = field
        self.product_id = product_id
        self.available = available
        self.position = position
        super().__init__(self.message)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}"
            for k, v in (("field", self.field), ("product_id", self.product_id), ("available", self.available),
                         ("position", self.position))
            if v is not None
        )
        return f"{type(self).__name__}({self.message!r}{extra})"


class InvalidInput(RushcartError):
    code = ErrorCode.INVALID_INPUT


class ProductNotFound(RushcartError):
    code = ErrorCode.PRODUCT_NOT_FOUND
    default_message = "product not found"


class OutOfStock(RushcartError):
    code = ErrorCode.OUT_OF_STOCK
    default_message = "not enough units left"


class PurchaseLimitExceeded(RushcartError):
    code = ErrorCode.PURCHASE_LIMIT_EXCEEDED
    default_message = "purchase limit per customer exceeded"


class EmptyCart(RushcartError):
    code = ErrorCode.EMPTY_CART
    default_message = "the cart is empty"


class NotAuthenticated(RushcartError):
    code = ErrorCode.NOT_AUTHENTICATED
    default_message = "sign in first"


class Forbidden(RushcartError):
    code = ErrorCode.FORBIDDEN
    default_message = "not allowed"


class EmailTaken(RushcartError):
    code = ErrorCode.EMAIL_TAKEN
    default_message = "an account with this email already exists"


class InvalidCredentials(RushcartError):
    code = ErrorCode.INVALID_CREDENTIALS
    default_message = "wrong email or password"


class OrderNotFound(RushcartError):
    code = ErrorCode.ORDER_NOT_FOUND
    default_message = "order not found"


class OrderNotCancellable(RushcartError):
    code = ErrorCode.ORDER_NOT_CANCELLABLE
    default_message = "only a PENDING order can be cancelled"


class IdempotencyKeyReused(RushcartError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    default_message = "this idempotency key was used for a different order"


class RateLimited(RushcartError):
    code = ErrorCode.RATE_LIMITED
    default_message = "too many attempts; try again later"


class DropNotFound(RushcartError):
    code = ErrorCode.DROP_NOT_FOUND
    default_message = "drop not found"


class NotYourTurn(RushcartError):
    code = ErrorCode.NOT_YOUR_TURN
    default_message = "this product is sold through a waiting line; wait for your turn"


class TryAgain(RushcartError):
    code = ErrorCode.TRY_AGAIN
    default_message = "the request could not be completed now and nothing was done; send it again"
