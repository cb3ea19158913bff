"""Staff review lists: orders to refund, payment events nothing could apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from db import review
from db.errors import InvalidInput
from db.order_records import OrderRecord
from db.review import EventKey, PaymentEventRecord
from resolvers import cursors, validate
from resolvers.context import RequestContext

MAX_PAGE = 100
_REFUND_KIND = "refund"
_EVENT_KIND = "payment_event"
# Receipt times a cursor may name: 1970 up to the end of year 9999, what a timestamp column holds.
_MAX_RECEIVED_US = 253402300799_999999

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool


def _first(first: int) -> int:
    if first < 0:
        raise InvalidInput("first must not be negative", field="first")
    return min(first, MAX_PAGE)


async def orders_needing_refund(ctx: RequestContext, first: int, after: str | None) -> Page[OrderRecord]:
    await ctx.require_staff()
    limit = _first(first)
    key = cursors.decode(_REFUND_KIND, after)
    before = None if key is None else validate.order_cursor_key(key)
    items, more = await review.orders_needing_refund(ctx.state.backends.sessions, limit, before)
    return Page(items, more)


def refund_cursor(record: OrderRecord) -> str:
    return cursors.encode(_REFUND_KIND, record.id)


def _event_key(after: str | None) -> EventKey | None:
    key = cursors.decode(_EVENT_KIND, after)
    if key is None:
        return None
    micros, _, event_id = key.partition(":")
    if not (validate.DIGITS.match(micros) and int(micros) <= _MAX_RECEIVED_US and event_id):
        raise InvalidInput("not a valid cursor", field="after")
    return EventKey(int(micros), validate.storable(event_id, "after"))


async def payment_events_for_review(
    ctx: RequestContext, first: int, after: str | None, state: str | None
) -> Page[PaymentEventRecord]:
    await ctx.require_staff()
    limit = _first(first)
    before = _event_key(after)
    states = review.REVIEW_STATES if state is None else (state,)
    items, more = await review.payment_events(ctx.state.backends.sessions, states, limit, before)
    return Page(items, more)


def event_cursor(record: PaymentEventRecord) -> str:
    key = record.key
    return cursors.encode(_EVENT_KIND, f"{key.received_us}:{key.event_id}")
