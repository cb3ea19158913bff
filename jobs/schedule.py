"""The periodic jobs and how often each runs. The worker registers them with RQ's CronScheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs import carts, orders, payments, queues


@dataclass(frozen=True)
class Periodic:
    func: Callable[..., Any]
    interval_seconds: int
    queue: str


def periodic_jobs(intervals: dict[str, int]) -> list[Periodic]:
    """Every periodic job; `intervals` overrides the defaults by name."""
    every = {"cart_flush": 2, "cart_purge": 3600, "expire": 30, "persist_sweep": 10, "payment_sweep": 10,
             "mirror_sweep": 10, "reservation_sweep": 10,
             "reconcile": 60, **intervals}
    return [
        Periodic(payments.sweep_payment_events, every["payment_sweep"], queues.PAYMENTS),
        Periodic(orders.sweep_unpersisted_orders, every["persist_sweep"], queues.ORDERS),
        Periodic(orders.expire_unpaid_orders, every["expire"], queues.MAINTENANCE),
        Periodic(orders.undo_stale_reservations, every["reservation_sweep"], queues.ORDERS),
        Periodic(orders.mirror_owed_changes, every["mirror_sweep"], queues.MAINTENANCE),
        Periodic(orders.reconcile_stock, every["reconcile"], queues.MAINTENANCE),
        Periodic(carts.flush_carts, every["cart_flush"], queues.MAINTENANCE),
        Periodic(carts.purge_expired_carts, every["cart_purge"], queues.MAINTENANCE),
    ]
