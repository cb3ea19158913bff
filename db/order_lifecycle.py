"""The order lifecycle's entry points that may have to persist an order first.

A status change acts on the order's PostgreSQL row (db.order_transitions), so an order still
waiting in Redis is persisted on the spot rather than left to the next batch: there is one
path for every change, whether the order was accepted a second or an hour ago. The modules
below form a chain with no way back: transitions <- payments <- persistence <- this module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from db import keys
from db.backends import Backends
from db.enums import CancelReason
from db.order_persistence import ensure_persisted, persist_orders
from db.order_transitions import OrderRef, cancel_orders
from db.payments import apply_stored_event, apply_stored_events, event_order_id, event_orders
from db.values import as_text


async def cancel_order(backends: Backends, ref: OrderRef, reason: CancelReason) -> bool:
    """Cancel the order if it is still PENDING, releasing its units once; False when it was paid or
    cancelled first."""
    await ensure_persisted(backends, ref.order_id)
    return bool(await cancel_orders(backends, [ref], reason))


async def apply_payment_event(backends: Backends, event_id: str) -> str:
    """Apply a stored webhook event; returns its outcome ('waiting' while its order does not exist)."""
    order_id = await event_order_id(backends.sessions, event_id)
    if order_id is None:
        return "unknown_event"
    await ensure_persisted(backends, order_id)
    return await apply_stored_event(backends, event_id)


async def apply_payment_events(backends: Backends, event_ids: Sequence[str]) -> dict[str, str]:
    """Apply a batch of stored webhook events: the orders they need that still wait in Redis are
    persisted first in one call (which applies their events in its own transaction), then the
    rest are applied in order of receipt. Returns each event's outcome; an event applied
    elsewhere (by another applier, or by the persistence of its order in this call) answers
    'already_applied', and so does an id that is not a stored event."""
    events = await event_orders(backends.sessions, event_ids)
    order_ids = sorted({order_id for _, order_id in events})
    by_queue: dict[str, list[str]] = {}
    for order_id in order_ids:
        by_queue.setdefault(keys.orders_to_persist_of(order_id), []).append(order_id)
    # One call per bucket, so every batch stays on one slot.
    for queue, ids in sorted(by_queue.items()):
        scores = await backends.redis.zmscore(queue, ids)
        # In the persistence batches' own order (by creation, then id), so this batch and one of
        # theirs inserting the same orders wait for each other instead of deadlocking.
        in_redis = [oid for _, oid in sorted((score, oid) for oid, score in zip(ids, scores, strict=True)
                                             if score is not None)]
        if in_redis:
            await persist_orders(backends, in_redis)
    outcomes = dict.fromkeys(event_ids, "already_applied")
    outcomes.update(await apply_stored_events(backends, [event_id for event_id, _ in events]))
    return outcomes


async def queue_payment_events(backends: Backends, event_ids: Sequence[str]) -> None:
    """Put stored events into payments:toapply (the sweeper's way back for ids that never got there)."""
    if event_ids:
        now_ms = int(time.time() * 1000)
        await backends.redis.zadd(keys.PAYMENTS_TO_APPLY, dict.fromkeys(event_ids, now_ms), nx=True)


async def apply_queued_payments(
    backends: Backends, batch_size: int, before_batch: Callable[[], Awaitable[Any]] | None = None
) -> dict[str, str]:
    """Drain payments:toapply in batches of `batch_size`, oldest first; an id leaves the set only
    after its batch was applied. Returns the outcome of every event taken."""
    outcomes: dict[str, str] = {}
    while True:
        if before_batch is not None:
            await before_batch()
        ids = [as_text(i) for i in await backends.redis.zrange(keys.PAYMENTS_TO_APPLY, 0, batch_size - 1)]
        if not ids:
            return outcomes
        outcomes.update(await apply_payment_events(backends, ids))
        await backends.redis.zrem(keys.PAYMENTS_TO_APPLY, *ids)
        if len(ids) < batch_size:
            return outcomes
