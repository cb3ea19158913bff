"""Catalogue reads for everyone, catalogue changes for staff."""

from __future__ import annotations

import contextlib
from typing import Any

from db.catalog import UPDATABLE, NewProduct, ProductPage, ProductRecord
from db.errors import InvalidInput
from resolvers import cursors, validate
from resolvers.context import RequestContext

MAX_PAGE = 100
# A line of 100 units at the highest price still fits a GraphQL Int (lineTotalCents).
MAX_PRICE_CENTS = validate.MAX_INT // validate.MAX_LINE_QUANTITY
MAX_STOCK = 10_000_000


async def product(ctx: RequestContext, product_id: str) -> ProductRecord | None:
    try:
        pid = validate.product_id(product_id, "id")
    except InvalidInput:
        return None
    return await ctx.products.load(pid)


async def products(ctx: RequestContext, first: int, after: str | None, search: str | None) -> ProductPage:
    if first < 0:
        raise InvalidInput("first must not be negative", field="first")
    key = cursors.decode("product", after)
    try:
        after_id = validate.product_id(key, "after") if key is not None else None
    except InvalidInput:
        raise InvalidInput("not a valid cursor", field="after") from None
    if search is not None:
        search = validate.text(search, "search", max_length=100)
    page = await ctx.state.catalog.list(min(first, MAX_PAGE), after_id, search or None)
    for record in page.items:
        ctx.products.prime(record.id, record)
    return page


def product_cursor(record: ProductRecord) -> str:
    return cursors.encode("product", record.id)


def _max_per_customer(value: int | None) -> int | None:
    if value is None:
        return None
    return validate.int_range(value, "maxPerCustomer", minimum=1, maximum=MAX_STOCK)


async def create(
    ctx: RequestContext,
    *,
    sku: str,
    name: str,
    description: str,
    price_cents: int,
    currency: str,
    stock: int,
    max_per_customer: int | None,
    image_url: str | None,
) -> ProductRecord:
    await ctx.require_staff()
    new = NewProduct(
        sku=validate.sku(sku),
        name=validate.text(name, "name", min_length=1, max_length=200),
        description=validate.text(description, "description", max_length=5000),
        price_cents=validate.int_range(price_cents, "priceCents", minimum=0, maximum=MAX_PRICE_CENTS),
        currency=validate.currency(currency),
        stock=validate.int_range(stock, "stock", minimum=0, maximum=MAX_STOCK),
        max_per_customer=_max_per_customer(max_per_customer),
        image_url=validate.url(image_url, "imageUrl"),
    )
    return await ctx.state.catalog.create(new)


async def update(ctx: RequestContext, product_id: str, changes: dict[str, Any]) -> ProductRecord:
    await ctx.require_staff()
    pid = validate.product_id(product_id, "id")
    checked: dict[str, Any] = {}
    for column, value in changes.items():
        if column not in UPDATABLE:
            raise InvalidInput(f"{column} cannot be changed", field=column)
        if column == "name":
            if value is None:
                raise InvalidInput("name must not be null", field="name")
            checked[column] = validate.text(value, "name", min_length=1, max_length=200)
        elif column == "description":
            checked[column] = validate.text(value or "", "description", max_length=5000)
        elif column == "price_cents":
            if value is None:
                raise InvalidInput("priceCents must not be null", field="priceCents")
            checked[column] = validate.int_range(value, "priceCents", minimum=0, maximum=MAX_PRICE_CENTS)
        elif column == "max_per_customer":
            checked[column] = _max_per_customer(value)
        elif column == "image_url":
            checked[column] = validate.url(value, "imageUrl")
    return await ctx.state.catalog.update(pid, checked)


async def adjust_stock(ctx: RequestContext, product_id: str, delta: int) -> ProductRecord:
    await ctx.require_staff()
    pid = validate.product_id(product_id)
    validate.int_range(delta, "delta", minimum=-MAX_STOCK, maximum=MAX_STOCK)
    if delta == 0:
        raise InvalidInput("delta must not be 0", field="delta")
    record = await ctx.state.catalog.adjust_stock(pid, delta)
    with contextlib.suppress(KeyError):  # only cached if this request read it before
        ctx.available.clear(pid)
    return record
