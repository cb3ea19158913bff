"""Payment jobs: drain the queued webhook events in batches, and sweep events that never got there."""

from __future__ import annotations

import contextlib
import logging

from redis.exceptions import LockError

from db import keys
from db.order_lifecycle import apply_payment_event as apply_event
from db.order_lifecycle import apply_queued_payments as apply_queued
from db.order_lifecycle import queue_payment_events
from db.payments import open_event_ids
from jobs import runtime

log = logging.getLogger("rushcart.jobs.payments")

# An event still unapplied after this long never reached payments:toapply (its process died
# between the insert and the queue, or Redis was down), or waits for its order: queue it again.
SWEEP_AGE_SECONDS = 5
# Events one batch takes from payments:toapply.
APPLY_BATCH_SIZE = 500
# A drainer renews its lock before every batch; a dead one's lock frees itself after this.
DRAIN_LOCK_SECONDS = 10


async def _drain(rt: runtime.Runtime) -> dict[str, str]:
    """Apply queued events while holding the drain lock; without the lock, leave it to its holder.

    One drainer at a time keeps two workers from locking the same event and order rows. The
    holder re-checks the queue after releasing: an event whose job found the lock taken is then
    still picked up.
    """
    outcomes: dict[str, str] = {}
    while True:
        lock = rt.backends.redis.lock(keys.PAYMENTS_LOCK, timeout=DRAIN_LOCK_SECONDS, blocking=False)
        if not await lock.acquire():
            return outcomes
        try:
            outcomes.update(await apply_queued(rt.backends, APPLY_BATCH_SIZE, before_batch=lock.reacquire))
        finally:
            with contextlib.suppress(LockError):
                await lock.release()
        if not await rt.backends.redis.zcard(keys.PAYMENTS_TO_APPLY):
            return outcomes


def apply_queued_payments() -> int:
    """Apply the events in payments:toapply in batches; returns how many were applied now."""

    async def body(rt: runtime.Runtime) -> int:
        # Cleared first: an event received from now on enqueues a new job rather than relying on this one.
        await rt.backends.redis.delete(keys.PAYMENTS_PENDING)
        outcomes = await _drain(rt)
        return sum(outcome not in ("waiting", "already_applied") for outcome in outcomes.values())

    return runtime.run(body)


def apply_payment_event(event_id: str) -> str:
    """Apply one stored event (jobs enqueued one per event before events were applied in batches)."""

    async def body(rt: runtime.Runtime) -> str:
        return await apply_event(rt.backends, event_id)

    return runtime.run(body)


def sweep_payment_events() -> int:
    """Queue events left in `received` or `waiting` and drain the queue; returns how many of them
    were applied now."""

    async def body(rt: runtime.Runtime) -> int:
        late = await open_event_ids(rt.backends.sessions, SWEEP_AGE_SECONDS)
        await queue_payment_events(rt.backends, late)
        outcomes = await _drain(rt)
        applied = 0
        for event_id in late:
            outcome = outcomes.get(event_id, "waiting")
            if outcome not in ("waiting", "already_applied"):
                applied += 1
                log.warning("payment sweeper applied event %s late: %s", event_id, outcome)
        return applied

    return runtime.run(body)
