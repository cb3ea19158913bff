"""Buying, cancelling and reading orders."""

from __future__ import annotations

import re
from dataclasses import dataclass

from db.carts import customer_owner
from db.errors import EmptyCart, InvalidInput
from db.order_records import OrderRecord, fingerprint
from db.orders import Reservation
from db.scripts import CartChanged, CheckoutCart
from resolvers import cursors, validate
from resolvers.buy_metrics import counted_buy
from resolvers.context import RequestContext
from resolvers.drops import shoppers

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_PAGE = 100


@dataclass(frozen=True)
class OrderPage:
    items: list[OrderRecord]
    has_next_page: bool


def _idempotency_key(value: str) -> str:
    if not IDEMPOTENCY_KEY.match(value):
        raise InvalidInput("idempotencyKey must be 1-128 letters, digits, '.', '_', ':' or '-'",
                           field="idempotencyKey")
    return value


def _order_lines(lines: list[tuple[str, int]]) -> list[tuple[int, int]]:
    if not lines:
        raise InvalidInput("an order needs at least one line", field="lines")
    merged: dict[int, int] = {}
    for index, (product_id, quantity) in enumerate(lines):
        pid = validate.product_id(product_id, f"lines[{index}].productId")
        validate.quantity(quantity, f"lines[{index}].quantity")
        merged[pid] = merged.get(pid, 0) + quantity
    if len(merged) > validate.MAX_LINES:
        raise InvalidInput(f"an order holds at most {validate.MAX_LINES} lines", field="lines")
    for pid, quantity in merged.items():
        if quantity > validate.MAX_LINE_QUANTITY:
            raise InvalidInput(f"at most {validate.MAX_LINE_QUANTITY} units of one product per order",
                               field="lines", product_id=pid)
    return sorted(merged.items())


async def _enqueue_persistence_if_needed(ctx: RequestContext, reservation: Reservation) -> None:
    if reservation.enqueue_persistence:
        await ctx.state.enqueuer.persist_orders(reservation.bucket)


@counted_buy
async def place_order(ctx: RequestContext, lines: list[tuple[str, int]], idempotency_key: str) -> OrderRecord:
    viewer = await ctx.require_customer()
    key = _idempotency_key(idempotency_key)
    reservation = await ctx.state.orders.reserve(viewer.customer_id, _order_lines(lines), key,
                                                 shoppers=await shoppers(ctx, viewer.customer_id))
    await _enqueue_persistence_if_needed(ctx, reservation)
    return reservation.order


@counted_buy
async def checkout(ctx: RequestContext, idempotency_key: str) -> OrderRecord:
    viewer = await ctx.require_customer()
    key = _idempotency_key(idempotency_key)
    owner = customer_owner(viewer.customer_id)
    for _ in range(5):
        cart = await ctx.state.carts.get(owner)
        if not cart.lines:
            earlier = await ctx.state.orders.replayed(viewer.customer_id, key, fingerprint([], checkout=True))
            if earlier is not None:
                return earlier
            raise EmptyCart()
        lines = _order_lines([(str(pid), qty) for pid, qty in cart.lines.items()])
        try:
            reservation = await ctx.state.orders.reserve(
                viewer.customer_id, lines, key,
                CheckoutCart(owner, cart.version, ctx.state.carts.ttl_for(owner)),
                shoppers=await shoppers(ctx, viewer.customer_id),
            )
        except CartChanged:
            continue
        await _enqueue_persistence_if_needed(ctx, reservation)
        return reservation.order
    raise InvalidInput("the cart kept changing during checkout; try again", field="cart")


async def cancel(ctx: RequestContext, order_id: str) -> OrderRecord:
    viewer = await ctx.require_customer()
    return await ctx.state.orders.cancel(order_id, viewer.customer_id, staff=viewer.is_staff)


async def order(ctx: RequestContext, order_id: str) -> OrderRecord | None:
    viewer = await ctx.viewer()
    if viewer is None:
        return None
    return await ctx.state.orders.get(order_id, None if viewer.is_staff else viewer.customer_id)


async def orders(ctx: RequestContext, first: int, after: str | None) -> OrderPage:
    viewer = await ctx.require_customer()
    if first < 0:
        raise InvalidInput("first must not be negative", field="first")
    key = cursors.decode("order", after)
    before = None if key is None else validate.order_cursor_key(key)
    items, more = await ctx.state.orders.list_for_customer(viewer.customer_id, min(first, MAX_PAGE), before)
    return OrderPage(items, more)


def order_cursor(record: OrderRecord) -> str:
    return cursors.encode("order", record.id)
