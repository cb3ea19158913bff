"""Buy attempts counted and timed where they happen, in the resolver that makes them.

Counted here rather than from the answer, so every way a buy is asked for counts the same: by
text or by persisted `documentId`, planned or not, under any alias, whatever the client selects.
The server registers these metrics for `/metrics` (server.metrics); with PROMETHEUS_MULTIPROC_DIR
set before this module is imported, every server process writes its samples to that folder.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Histogram

from db.errors import RushcartError

__all__ = ["ORDERS", "RESERVATION_SECONDS", "counted_buy"]

ORDERS = Counter("rushcart_orders_total", "Buy attempts by outcome (accepted or the error code)", ["outcome"])
RESERVATION_SECONDS = Histogram(
    "rushcart_reservation_seconds", "Time to answer placeOrder / checkout",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

P = ParamSpec("P")
T = TypeVar("T")


def counted_buy(buy: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Time each call of `buy` and count its outcome: `accepted`, the domain error's code, or `error`."""

    @functools.wraps(buy)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        outcome = "error"  # anything unexpected, a cancelled request included
        try:
            result = await buy(*args, **kwargs)
            outcome = "accepted"
            return result
        except RushcartError as exc:
            outcome = exc.code
            raise
        finally:
            RESERVATION_SECONDS.observe(time.perf_counter() - started)
            ORDERS.labels(outcome).inc()

    return counted
