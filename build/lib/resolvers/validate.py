"""Argument checks shared by resolvers: each raises InvalidInput naming the field."""

from __future__ import annotations

import re

from db.errors import InvalidInput
from db.order_records import canonical_order_id

# GraphQL's Int and the integer columns are 32-bit: an amount, a total or a stock figure must fit.
MAX_INT = 2**31 - 1
# What PostgreSQL's text cannot store (NUL) and UTF-8 cannot encode (an unpaired surrogate).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
DIGITS = re.compile(r"^[0-9]{1,19}$")

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

MAX_LINE_QUANTITY = 100
MAX_LINES = 50


def storable(value: str, field: str) -> str:
    """Refuse text PostgreSQL cannot store or UTF-8 cannot encode, before it goes anywhere."""
    if UNSTORABLE.search(value):
        raise InvalidInput(f"{field} must not contain NUL characters or unpaired surrogates", field=field)
    return value


def email(value: str, field: str = "email") -> str:
    value = storable(value, field).strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise InvalidInput("not a valid email address", field=field)
    return value.lower()


def password(value: str, field: str = "password") -> str:
    storable(value, field)
    if len(value) < 8:
        raise InvalidInput("password must be at least 8 characters", field=field)
    if len(value) > 256:
        raise InvalidInput("password must be at most 256 characters", field=field)
    return value


def text(value: str, field: str, *, max_length: int, min_length: int = 0) -> str:
    value = storable(value, field).strip()
    if len(value) < min_length:
        raise InvalidInput(f"{field} must not be empty" if min_length == 1 else f"{field} is too short",
                           field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    return value


def int_range(value: int, field: str, *, minimum: int, maximum: int) -> int:
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{field} must be between {minimum} and {maximum}", field=field)
    return value


def sku(value: str, field: str = "sku") -> str:
    value = storable(value, field).strip()
    if not SKU.match(value):
        raise InvalidInput("sku must be 1-64 letters, digits, '.', '_' or '-'", field=field)
    return value


def currency(value: str, field: str = "currency") -> str:
    if not CURRENCY.match(value):
        raise InvalidInput("currency must be a three-letter ISO code such as USD", field=field)
    return value


def url(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    storable(value, field)
    if len(value) > 2048 or not (value.startswith("https://") or value.startswith("http://") or
                                 value.startswith("/")):
        raise InvalidInput(f"{field} must be an http(s) URL or a path", field=field)
    return value


def product_id(value: str, field: str = "productId") -> int:
    # Only ASCII digits: int() would also take "1_000", " 7 " and digits of other scripts.
    if not isinstance(value, str) or not DIGITS.match(value) or not 0 < int(value) < 2**63:
        raise InvalidInput("not a product id", field=field)
    return int(value)


def order_cursor_key(value: str, field: str = "after") -> str:
    canonical = canonical_order_id(value)
    if canonical is None:
        raise InvalidInput("not a valid cursor", field=field)
    return canonical


def quantity(value: int, field: str = "quantity", *, allow_zero: bool = False) -> int:
    return int_range(value, field, minimum=0 if allow_zero else 1, maximum=MAX_LINE_QUANTITY)
