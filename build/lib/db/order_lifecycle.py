"""The order lifecycle's entry points that may have to persist an order first.

A status change acts on the order's PostgreSQL row (db.order_transitions), so an order still
waiting in Redis is persisted on the spot rather than left to the next batch: there is one
path for every change, whether the order was accepted a second or an hour ago. The modules
below form a chain with no way back: transitions <- payments <- persistence <- this module.
"""

from __future__ import annotations

from db.backends import Backends
from db.enums import CancelReason
from db.order_persistence import ensure_persisted
from db.order_transitions import OrderRef, cancel_orders
from db.payments import apply_stored_event, event_order_id


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
