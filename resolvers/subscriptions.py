"""Live order status and stock: subscribe to Redis first, then send the current state, then changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from db import keys
from db.enums import CancelReason, OrderStatus
from db.errors import NotAuthenticated, OrderNotFound, ProductNotFound
from db.events import RESYNC, REVOKED
from db.order_records import OrderRecord
from resolvers import validate
from resolvers.context import RequestContext

FINAL = (OrderStatus.PAID, OrderStatus.CANCELLED)
# Under a burst, a stock subscriber gets the latest figure at most this often.
STOCK_MIN_INTERVAL = 0.25


@dataclass(frozen=True)
class OrderStatusChange:
    order_id: str
    status: OrderStatus
    cancel_reason: CancelReason | None
    at: datetime


@dataclass(frozen=True)
class StockChange:
    product_id: int
    available: int
    at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _status_of(record: OrderRecord) -> OrderStatusChange:
    at = record.paid_at or record.cancelled_at or record.created_at
    return OrderStatusChange(record.id, record.status, record.cancel_reason, at)


async def order_status(ctx: RequestContext, order_id: str) -> AsyncIterator[OrderStatusChange]:
    viewer = await ctx.require_customer()
    owner = None if viewer.is_staff else viewer.customer_id
    if await ctx.state.orders.get(order_id, owner) is None:
        raise OrderNotFound("no such order of yours")
    listener = await ctx.state.events.listen(keys.order_channel(order_id))
    # A logout ends the stream: the revocation is pushed into the same queue as the order's events.
    token = ctx.bearer_token
    assert token is not None
    stop_watching = ctx.state.accounts.on_revoked(token, lambda: listener.push(REVOKED))
    try:
        # Read after subscribing: a change between the two is then seen at least once.
        record = await ctx.state.orders.get(order_id, owner)
        assert record is not None
        last = _status_of(record)
        yield last
        while last.status not in FINAL:
            event = await listener.get()
            if event is REVOKED or event is RESYNC:
                # A RESYNC may stand for a lost revocation too.
                if await ctx.state.accounts.resolve_token(token) is None:
                    raise NotAuthenticated("token expired or revoked; sign in again to follow this order")
                if event is REVOKED:
                    continue
            if event is RESYNC:
                record = await ctx.state.orders.get(order_id, owner)
                assert record is not None
                current = _status_of(record)
            else:
                current = OrderStatusChange(
                    order_id,
                    OrderStatus(event["status"]),
                    CancelReason(event["cancelReason"]) if event.get("cancelReason") else None,
                    datetime.fromtimestamp(float(event["at"]), UTC),
                )
            if current.status != last.status:
                last = current
                yield current
    finally:
        stop_watching()
        await ctx.state.events.forget(listener)


async def product_stock(ctx: RequestContext, product_id: str) -> AsyncIterator[StockChange]:
    try:
        pid = validate.product_id(product_id, "productId")
    except Exception:
        raise ProductNotFound(f"no product with id {product_id}") from None
    # The hub coalesces a burst once for every watcher of the product (the newest figure at most
    # every STOCK_MIN_INTERVAL), so they all get the same events and share their results.
    listener = await ctx.state.events.listen(keys.stock_channel(pid), STOCK_MIN_INTERVAL)
    try:
        current = (await ctx.state.stock.available([pid]))[0]
        if current is None:
            raise ProductNotFound(f"no product with id {product_id}")
        last = max(0, current)
        yield StockChange(pid, last, _now())
        while True:
            event = await listener.get()
            events = [event, *listener.drain()]
            if any(e is RESYNC for e in events):
                value = max(0, (await ctx.state.stock.available([pid]))[0] or 0)
                at = _now()
            else:
                # Redis runs scripts one at a time and delivers a channel's messages in order, so the
                # last is the newest (two changes can share a microsecond `at`).
                newest = events[-1]
                value, at = max(0, int(newest["available"])), datetime.fromtimestamp(float(newest["at"]), UTC)
            if value != last:
                last = value
                yield StockChange(pid, value, at)
    finally:
        await ctx.state.events.forget(listener)
