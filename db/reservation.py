"""A reservation in steps, for a cluster, where an order's products and its customer live on
different shards and no one script may touch them all.

On one node the whole reservation is one script call (db/lua/order_reserve.lua). On a cluster the
same checks and writes (db/lua/lib/reserve.lua, one set of sources) run as steps, each on one slot:

1. `order_begin` on the customer's bucket: the idempotency key (a replay answers the order it
   made, a second request while this one is under way is told TRY_AGAIN), the allowance, a
   checked-out cart's version; then a note of the reservation (its lines, the deadline by which it
   must be committed) in `orders:reserving`.
2. `stock_take` on each product's slot, side by side: the product's own checks, the units taken,
   and a mark of what was taken for this order under which rebuild epoch.
3. `order_commit` on the bucket: the customer's limits, one currency, the largest total, then the
   order recorded, queued and announced exactly as the one-call script does. Only then is the
   buyer answered.

Whatever stops the reservation before its commit (a refusal, an error, a lost connection) undoes
it: its note is claimed (a commit that ran but whose reply was lost left none: that order stands),
then `stock_untake` on every product (it gives back what its mark says, once, and leaves the mark
"undone" so a take still on its way takes nothing), then `order_abandon` frees the note and the
idempotency key. A process that dies in between leaves the note: `undo_stale` (a periodic job)
claims every note past its deadline (its commit is refused from then on) and undoes it the same
way. So a crash never oversells (a take is checked on the product's own slot), never holds units
for longer than the deadline and a sweep, and never answers an order that is not recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from db import buckets, keys
from db.errors import OutOfStock, TryAgain
from db.scripts import (
    OrderRequest,
    PassNeeded,
    Replayed,
    ReservationBusy,
    ReservationUndone,
    Reserved,
    ReserveLine,
    Scripts,
    StockMissing,
    TakenLine,
)
from db.state_redis import StateRedis
from db.values import as_text

log = logging.getLogger("rushcart.reservation")

# A reservation must be committed this long after it began, or the sweeper undoes it.
DEADLINE_SECONDS = 5
# Notes and marks outlive any sweep that could still need them.
NOTE_TTL_SECONDS = 86400


async def reserve_when_free(scripts: Scripts, order: OrderRequest) -> Reserved | Replayed:
    """reserve_in_steps, waiting out another request with the same idempotency key still under way
    (as the one-call script would have answered it the order that request makes); TryAgain when it
    has not finished by its deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS + 1
    pause = 0.005
    while True:
        try:
            return await reserve_in_steps(scripts, order)
        except ReservationBusy:
            if time.monotonic() + pause > deadline:
                raise TryAgain("another request with this idempotency key is still under way; send it again") from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)


async def reserve_in_steps(scripts: Scripts, order: OrderRequest) -> Reserved | Replayed:
    """Reserve every line or none, as Scripts.order_reserve does, in steps. Raises what it raises,
    and ReservationUndone when the sweeper undid this reservation first (start again, new order id)."""
    replayed = await scripts.order_begin(order, deadline_ms=int(time.time() * 1000) + DEADLINE_SECONDS * 1000,
                                         lock_ttl_seconds=DEADLINE_SECONDS, note_ttl_seconds=NOTE_TTL_SECONDS)
    if replayed is not None:
        return replayed
    # Every line may have units taken (or a take on its way) until its take has answered.
    to_undo = [line.product_id for line in order.lines]
    try:
        taken = await _take_every_line(scripts, order.order_id, order.lines, order.drop_passes, to_undo)
        return await scripts.order_commit(order, taken)
    except BaseException:
        # Shielded: a request cancelled mid-way (its client gone) must still give its units back.
        try:
            await asyncio.shield(_undo_own(scripts, order.order_id, to_undo,
                                           keys.idempotency_lock(order.customer_id, order.idempotency_key)))
        except Exception:
            # A shard that cannot answer (a failover) leaves the undo to the sweeper, past the deadline.
            log.warning("reservation %s left for the sweeper to undo", order.order_id, exc_info=True)
        raise


# A take refused with one of these wrote nothing: its line has nothing to undo.
_TOOK_NOTHING = (OutOfStock, StockMissing, PassNeeded, ReservationUndone)


async def _take_every_line(scripts: Scripts, order_id: str, lines: Sequence[ReserveLine],
                           drop_passes: Sequence[int], to_undo: list[int]) -> list[TakenLine]:
    """Take every line side by side (the products are on different shards), each let finish, so that
    `to_undo` is left naming exactly the lines that may hold units; the first line's refusal is told."""
    results = await asyncio.gather(
        *(scripts.stock_take(order_id=order_id, line=line, drop_passes=drop_passes,
                             mark_ttl_seconds=NOTE_TTL_SECONDS) for line in lines),
        return_exceptions=True,
    )
    to_undo[:] = [line.product_id for line, result in zip(lines, results, strict=True)
                  if not isinstance(result, _TOOK_NOTHING)]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if isinstance(result, TakenLine)]


# Claims a note whatever its deadline: the caller's own reservation.
_ANY_DEADLINE_MS = 2**62


async def _undo_own(scripts: Scripts, order_id: str, product_ids: Sequence[int], lock: str) -> None:
    """Undo the caller's own reservation, claiming its note first as the sweeper does. A commit whose
    reply was lost (a dropped connection, a failover) may have recorded the order: its note is gone
    then, and its units stay with it (a retry with the idempotency key answers that order)."""
    bucket = buckets.of_order(order_id)
    if bucket is not None and not await scripts.orders_stale(bucket, [order_id], _ANY_DEADLINE_MS):
        return
    await _undo(scripts, order_id, product_ids, lock)


async def _undo(scripts: Scripts, order_id: str, product_ids: Sequence[int], lock: str) -> None:
    for pid in product_ids:
        await scripts.stock_untake(order_id=order_id, product_id=pid, mark_ttl_seconds=NOTE_TTL_SECONDS)
    await scripts.order_abandon(order_id=order_id, lock=lock)


async def undo_stale(redis: StateRedis, scripts: Scripts, batch: int = 200) -> int:
    """Undo the reservations in steps past their deadline, in every bucket (their process died, or
    is too slow to be waited for); returns how many were undone."""
    now_ms = int(time.time() * 1000)
    undone = 0
    for bucket in range(buckets.count()):
        due = [as_text(oid) for oid in await redis.zrangebyscore(keys.orders_reserving(bucket), "-inf", now_ms,
                                                                 start=0, num=batch)]
        if not due:
            continue
        for stale in await scripts.orders_stale(bucket, due, now_ms):
            # A note gone (it outlives any sweep, so only with Redis' data) leaves nothing to undo.
            await _undo(scripts, stale.order_id, stale.product_ids, stale.lock)
            undone += 1
    return undone
