"""Order jobs: batched persistence, the sweeper for ids nobody enqueued, and expiry."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from redis.exceptions import LockError

from db import buckets, keys
from db.order_persistence import persist_pending
from db.order_transitions import expire_due
from db.stock import reconcile
from jobs import runtime

log = logging.getLogger("rushcart.jobs.orders")

# An id older than this in a to-persist queue was probably never enqueued (its process died).
SWEEP_AGE_MS = 2000
# A drainer renews its lock before every batch; a dead one's lock frees itself after this.
DRAIN_LOCK_SECONDS = 10


async def _drain(rt: runtime.Runtime, queues: Sequence[tuple[str, str]], older_than_ms: int | None = None) -> int:
    """Persist the queued orders of each (queue, lock) while holding that queue's drain lock; a
    queue whose lock is taken is left to its holder.

    One drainer per bucket keeps two workers from reading the same batch and queueing on the same
    product rows, while workers share the buckets. Running twice would still be safe (see
    db.order_persistence), only wasteful. The holder re-checks its queue after releasing: an order
    whose job found the lock taken is then still picked up.
    """
    total = 0
    for queue, lock_key in queues:
        while True:
            lock = rt.backends.redis.lock(lock_key, timeout=DRAIN_LOCK_SECONDS, blocking=False)
            if not await lock.acquire():
                break
            try:
                total += await persist_pending(
                    rt.backends, queue, rt.config.persist_batch_size, older_than_ms, before_batch=lock.reacquire
                )
            finally:
                with contextlib.suppress(LockError):
                    await lock.release()
            if older_than_ms is not None or not await rt.backends.redis.zcard(queue):
                break
    return total


def persist_pending_orders(bucket: int | None = None) -> int:
    """Drain the bucket's to-persist queue (every bucket's without one) in batches; returns orders
    inserted. Safe to run concurrently."""

    async def body(rt: runtime.Runtime) -> int:
        every = keys.all_orders_to_persist()
        queues = every if bucket is None else [(keys.orders_to_persist(bucket), keys.persist_lock(bucket))]
        # Cleared first: an order accepted from now on enqueues a new job rather than relying on this one.
        flags = [keys.persist_pending(b) for b in range(buckets.count())] if bucket is None else [
            keys.persist_pending(bucket)]
        for flag in flags:
            await rt.backends.redis.delete(flag)
        return await _drain(rt, queues)

    return runtime.run(body)


def sweep_unpersisted_orders() -> int:
    """Persist ids that have waited too long in any bucket: their enqueue was lost or their job failed."""

    async def body(rt: runtime.Runtime) -> int:
        inserted = await _drain(rt, keys.all_orders_to_persist(), older_than_ms=int(time.time() * 1000) - SWEEP_AGE_MS)
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
