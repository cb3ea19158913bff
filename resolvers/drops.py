"""Drops: staff put products into a drop; shoppers join its line, follow it, and buy with a pass."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from db import keys
from db.drop_line import (
    LISTEN_MIN_INTERVAL_SECONDS,
    DropState,
    LineView,
    Place,
    customer_shopper,
    guest_shopper,
    line_view,
)
from db.drops import DropRecord, NewDrop
from db.enums import DropLineStatus
from db.errors import DropNotFound, InvalidInput, NotAuthenticated
from db.events import RESYNC
from resolvers import validate
from resolvers.context import RequestContext

MAX_PRODUCTS = 50
MAX_RATE = 100_000.0
MAX_ACTIVE = 10_000_000
MAX_PASS_TTL_SECONDS = 86_400
# A drop may be set up to a year ahead.
MAX_LEAD_SECONDS = 366 * 86_400
# The line's statuses after which nothing more changes for the shopper.
FINAL = (DropLineStatus.ENDED, DropLineStatus.PURCHASED, DropLineStatus.NOT_IN_LINE)


def drop_id(value: str, field: str = "id") -> int:
    try:
        return validate.product_id(value, field)
    except InvalidInput:
        raise DropNotFound(f"no drop with id {value}") from None


async def create(
    ctx: RequestContext, *, name: str, starts_at: datetime, product_ids: list[str], admit_per_second: float | None,
    max_active: int | None, pass_ttl_seconds: int,
) -> DropRecord:
    await ctx.require_staff()
    if starts_at.tzinfo is None:
        starts_at = starts_at.replace(tzinfo=UTC)
    lead = (starts_at - datetime.now(UTC)).total_seconds()
    if lead <= 0:
        raise InvalidInput("startsAt must be in the future", field="input.startsAt")
    if lead > MAX_LEAD_SECONDS:
        raise InvalidInput("startsAt must be within a year", field="input.startsAt")
    if not product_ids:
        raise InvalidInput("a drop needs at least one product", field="input.productIds")
    if len(product_ids) > MAX_PRODUCTS:
        raise InvalidInput(f"a drop holds at most {MAX_PRODUCTS} products", field="input.productIds")
    pids = tuple(validate.product_id(p, f"input.productIds[{i}]") for i, p in enumerate(product_ids))
    if len(set(pids)) != len(pids):
        raise InvalidInput("a product is listed twice", field="input.productIds")
    if admit_per_second is None and max_active is None:
        raise InvalidInput("a drop needs an admission policy: admitPerSecond, maxActive or both",
                           field="input.admitPerSecond")
    if admit_per_second is not None and not (math.isfinite(admit_per_second) and 0 < admit_per_second <= MAX_RATE):
        raise InvalidInput(f"admitPerSecond must be above 0 and at most {MAX_RATE:g}", field="input.admitPerSecond")
    if max_active is not None:
        validate.int_range(max_active, "input.maxActive", minimum=1, maximum=MAX_ACTIVE)
    validate.int_range(pass_ttl_seconds, "input.passTtlSeconds", minimum=5, maximum=MAX_PASS_TTL_SECONDS)
    return await ctx.state.drops.create(NewDrop(
        name=validate.text(name, "input.name", min_length=1, max_length=200), starts_at=starts_at,
        product_ids=pids, admit_per_second=admit_per_second, max_active=max_active,
        pass_ttl_seconds=pass_ttl_seconds,
    ))


async def end(ctx: RequestContext, id_: str) -> DropRecord:
    await ctx.require_staff()
    return await ctx.state.drops.end(drop_id(id_))


async def drop(ctx: RequestContext, id_: str) -> DropRecord | None:
    try:
        return await ctx.state.drops.get(drop_id(id_))
    except DropNotFound:
        return None


async def shopper(ctx: RequestContext) -> str:
    """Whose place it is: the signed-in customer, else the guest session."""
    viewer = await ctx.viewer()
    if viewer is not None:
        return customer_shopper(viewer.customer_id)
    sid = await ctx.session_id()
    if sid is not None:
        return guest_shopper(sid)
    raise NotAuthenticated("sign in or start a guest session (startSession) to join a drop's line")


async def shoppers(ctx: RequestContext, customer_id: int) -> list[str]:
    """Whose passes an order may use: the customer's, then the guest session's it came with."""
    holders = [customer_shopper(customer_id)]
    sid = await ctx.session_id()
    if sid is not None:
        holders.append(guest_shopper(sid))
    return holders


async def _live_drop(ctx: RequestContext, id_: str) -> DropRecord:
    record = await ctx.state.drops.cached(drop_id(id_, "dropId"))
    if record is None:
        raise DropNotFound(f"no drop with id {id_}")
    return record


async def place_holder(ctx: RequestContext, record: DropRecord) -> str:
    """Whose place a request joins and follows: the signed-in customer's, unless the customer has
    none and the guest session the request comes with took one before signing in (an order may use
    that session's pass too, so the shopper keeps one place rather than getting a second)."""
    who = await shopper(ctx)
    viewer = await ctx.viewer()
    sid = await ctx.session_id()
    if viewer is None or sid is None or await ctx.state.drop_line.has_place(record, who):
        return who
    guest = guest_shopper(sid)
    return guest if await ctx.state.drop_line.has_place(record, guest) else who


async def join(ctx: RequestContext, id_: str) -> LineView:
    record = await _live_drop(ctx, id_)
    who = await place_holder(ctx, record)
    await ctx.state.drop_line.join(record, who, ctx.client or "unknown")
    state, place = await ctx.state.drop_line.advance(record, who)
    return line_view(record, state, place)


async def line(ctx: RequestContext, id_: str) -> LineView:
    record = await _live_drop(ctx, id_)
    state, place = await ctx.state.drop_line.advance(record, await place_holder(ctx, record))
    return line_view(record, state, place)


def pass_expires_at(view: LineView) -> datetime | None:
    return None if view.pass_expires_ms is None else datetime.fromtimestamp(view.pass_expires_ms / 1000, UTC)


def _stale(place: Place, before: DropState, after: DropState) -> bool:
    """Whether the shopper's own place must be read again for `after` (else it is worked out locally).

    A rank read before the start is not final (the start shuffles); a shopper whose turn came needs
    their pass' expiry; one holding a pass learns it was used or ran out when those counts move.
    """
    if place.rank is None:
        return False
    if not place.fixed:
        return after.started
    if place.pass_expires_ms is None and not place.spent:
        return place.rank < after.admitted
    return place.pass_expires_ms is not None and not place.spent and (
        (before.used, before.expired) != (after.used, after.expired))


async def follow(ctx: RequestContext, id_: str) -> AsyncIterator[LineView]:
    """The shopper's place now, then each change: subscribe first, read second, then work each
    state message of the drop out locally, reading Redis again only when the place itself moved."""
    record = await _live_drop(ctx, id_)
    who = await place_holder(ctx, record)
    line = ctx.state.drop_line
    listener = await ctx.state.events.listen(keys.drop_channel(record.id), LISTEN_MIN_INTERVAL_SECONDS)
    try:
        state = await line.shared_state(record)
        place = await line.place(record, who, state.started)
        last = line_view(record, state, place)
        yield last
        while last.status not in FINAL:
            events = [await listener.get(), *listener.drain()]
            if any(e is RESYNC for e in events):
                state = await line.shared_state(record)
                place = await line.place(record, who, state.started)
            else:
                newer = DropState.from_event(events[-1], state)
                if newer.at_ms < state.at_ms:
                    continue
                if _stale(place, state, newer):
                    place = await line.place(record, who, newer.started)
                state = newer
            current = line_view(record, state, place)
            if current != last:
                last = current
                yield current
    finally:
        await ctx.state.events.forget(listener)
