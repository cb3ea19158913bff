"""Order jobs: batched persistence, the sweeper for ids nobody enqueued, and expiry."""

from __future__ import annotations

import contextlib
import logging
import time

from redis.exceptions import LockError

from db import keys
from db.order_persistence import persist_pending
from db.order_transitions import expire_due
from db.stock import reconcile
from jobs import runtime

log = logging.getLogger("rushcart.jobs.orders")

# An id older than this in orders:topersist was probably never enqueued (its process died).
SWEEP_AGE_MS = 2000
# A drainer renews its lock before every batch; a dead one's lock frees itself after this.
DRAIN_LOCK_SECONDS = 10


async def _drain(rt: runtime.Runtime, older_than_ms: int | None = None) -> int:
    """Persist queued orders while holding the drain lock; without the lock, leave it to its holder.

    One drainer at a time keeps two workers from reading the same batch and queueing on the same
    product rows. Running twice would still be safe (see db.order_persistence), only wasteful.
    The holder re-checks the queue after releasing: an order whose job found the lock taken
    is then still picked up.
    """
    total = 0
    while True:
        lock = rt.backends.redis.lock(keys.PERSIST_LOCK, timeout=DRAIN_LOCK_SECONDS, blocking=False)
        if not await lock.acquire():
            return total
        try:
            total += await persist_pending(
                rt.backends, rt.config.persist_batch_size, older_than_ms, before_batch=lock.reacquire
            )
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        if older_than_ms is not None or not await rt.backends.redis.zcard(keys.ORDERS_TO_PERSIST):
            return total


def persist_pending_orders() -> int:
    """Drain the to-persist set in batches; returns orders inserted. Safe to run concurrently."""

    async def body(rt: runtime.Runtime) -> int:
        # Cleared first: an order accepted from now on enqueues a new job rather than relying on this one.
        await rt.backends.redis.delete(keys.PERSIST_PENDING)
        return await _drain(rt)

    return runtime.run(body)


def sweep_unpersisted_orders() -> int:
    """Persist ids that have waited too long: their enqueue was lost or their job failed."""

    async def body(rt: runtime.Runtime) -> int:
        inserted = await _drain(rt, older_than_ms=int(time.time() * 1000) - SWEEP_AGE_MS)
        if inserted:
            log.warning("sweeper persisted %d orders that no job had taken", inserted)
        return inserted

    return runtime.run(body)


def expire_unpaid_orders() -> int:
    """Cancel PENDING orders past their expiry (EXPIRED), releasing their stock once."""

    async def body(rt: runtime.Runtime) -> int:
        return await expire_due(rt.backends)

    return runtime.run(body)


def reconcile_stock() -> int:
    """Repair stock counters that drifted (confirmed on two runs); returns how many were repaired."""

    async def body(rt: runtime.Runtime) -> int:
        repaired = await reconcile(rt.backends)
        for product_id, drift in repaired.items():
            log.error("stock counter of product %s was off by %+d; repaired from PostgreSQL", product_id, drift)
        return len(repaired)

    return runtime.run(body)
