"""Order jobs: batched persistence, the sweeper for ids nobody enqueued, expiry, and the status
changes whose Redis step was lost."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from db import buckets, keys
from db.order_persistence import persist_pending
from db.order_transitions import expire_due, mirror_owed
from db.reservation import undo_stale
from db.state_redis import StateRedis
from db.stock import reconcile
from jobs import runtime

log = logging.getLogger("rushcart.jobs.orders")

# An id older than this in a to-persist queue was probably never enqueued (its process died).
SWEEP_AGE_MS = 2000
# A drainer renews its locks while it works; a dead one's locks free themselves after this.
DRAIN_LOCK_SECONDS = 10


class _HeldLocks:
    """The drain locks a job holds, renewed before a batch once a third of their time has passed
    (a round trip per lock before every batch would slow every batch)."""

    def __init__(self, locks: Sequence[Lock]) -> None:
        self.locks = locks
        self.renewed = time.monotonic()

    async def renew(self) -> None:
        if time.monotonic() - self.renewed < DRAIN_LOCK_SECONDS / 3:
            return
        for lock in self.locks:
            await lock.reacquire()
        self.renewed = time.monotonic()


async def _waiting(redis: StateRedis, queues: Sequence[str]) -> bool:
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zcard(queue)
        return any(await pipe.execute())


async def _drain(rt: runtime.Runtime, queues: Sequence[tuple[str, str]], older_than_ms: int | None = None) -> int:
    """Persist the orders queued in every (queue, lock) whose drain lock this job can take; a queue
    whose lock is held is left to its holder.

    Holding a bucket's lock keeps two workers from reading the same batch. A drainer takes every
    bucket it can and makes its batches over all of them: PostgreSQL is then written in large
    batches, where a batch per bucket would cut each into as many small transactions queueing on
    the same product rows; a second worker drains the buckets the first does not hold. Running
    twice would still be safe (see db.order_persistence), only wasteful. The holder re-checks its
    queues after releasing: an order whose job found a lock taken is then still picked up.
    """
    redis = rt.backends.redis
    total = 0
    while True:
        held: list[tuple[str, Lock]] = []
        for queue, lock_key in queues:
            lock = redis.lock(lock_key, timeout=DRAIN_LOCK_SECONDS, blocking=False)
            if await lock.acquire():
                held.append((queue, lock))
        if not held:
            return total
        mine = [queue for queue, _ in held]
        locks = _HeldLocks([lock for _, lock in held])
        try:
            # While orders keep arriving the locks stay held: taking every bucket's lock again per
            # batch would cost more Redis round trips than the batch's own steps.
            while True:
                total += await persist_pending(rt.backends, mine, rt.config.persist_batch_size, older_than_ms,
                                               before_batch=locks.renew)
                if older_than_ms is not None or not await _waiting(redis, mine):
                    break
        finally:
            for _, lock in held:
                with contextlib.suppress(LockError):
                    await lock.release()
        if older_than_ms is not None or not await _waiting(redis, mine):
            return total


def persist_pending_orders(bucket: int | None = None) -> int:
    """Drain the to-persist queues in batches, woken by an order of `bucket` (any, without one);
    returns orders inserted. Safe to run concurrently."""

    async def body(rt: runtime.Runtime) -> int:
        # Every bucket, the woken one first: a batch over several buckets is one transaction.
        every = keys.all_orders_to_persist()
        queues = every if bucket is None else sorted(every, key=lambda q: q[0] != keys.orders_to_persist(bucket))
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


def undo_stale_reservations() -> int:
    """Undo reservations in steps past their deadline (their process died mid-way): every unit they
    took goes back once, and their idempotency keys are free again."""

    async def body(rt: runtime.Runtime) -> int:
        undone = await undo_stale(rt.backends.redis, rt.backends.scripts)
        if undone:
            log.warning("undid %d reservations that were not committed in time", undone)
        return undone

    return runtime.run(body)


def mirror_owed_changes() -> int:
    """Finish committed cancellations and payments whose Redis step was lost (a commit whose reply
    never came, a process that died after its commit): units and allowance go back once."""

    async def body(rt: runtime.Runtime) -> int:
        redone = await mirror_owed(rt.backends)
        if redone:
            log.warning("finished the Redis step of %d committed status changes", redone)
        return redone

    return runtime.run(body)


def reconcile_stock() -> int:
    """Repair stock counters that drifted (confirmed on two runs); returns how many were repaired."""

    async def body(rt: runtime.Runtime) -> int:
        repaired = await reconcile(rt.backends)
        for product_id, drift in repaired.items():
            log.error("stock counter of product %s was off by %+d; repaired from PostgreSQL", product_id, drift)
        return len(repaired)

    return runtime.run(body)
