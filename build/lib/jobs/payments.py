"""Payment jobs: apply one stored webhook event, and sweep events whose job never ran."""

from __future__ import annotations

import logging

from db.order_lifecycle import apply_payment_event as apply_event
from db.payments import open_event_ids
from jobs import runtime

log = logging.getLogger("rushcart.jobs.payments")

# An event still unapplied after this long lost its job (or waits for its order): try again.
SWEEP_AGE_SECONDS = 5


def apply_payment_event(event_id: str) -> str:
    async def body(rt: runtime.Runtime) -> str:
        return await apply_event(rt.backends, event_id)

    return runtime.run(body)


def sweep_payment_events() -> int:
    """Apply events left in `received` or `waiting`; returns how many were applied now."""

    async def body(rt: runtime.Runtime) -> int:
        applied = 0
        for event_id in await open_event_ids(rt.backends.sessions, SWEEP_AGE_SECONDS):
            outcome = await apply_event(rt.backends, event_id)
            if outcome not in ("waiting", "already_applied"):
                applied += 1
                log.warning("payment sweeper applied event %s late: %s", event_id, outcome)
        return applied

    return runtime.run(body)
