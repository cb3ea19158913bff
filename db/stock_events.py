"""Stock events coalesced at the source, and the per-process flush that makes the last one go out.

What must hold: a watcher of a product's stock ends up with the counter's latest figure, however
the changes were spread over processes, and a hot product does not publish once per order.

A script that changes a counter publishes its figure only if the product published nothing in
the last STOCK_EVENT_WINDOW_MS (db/lua/lib/stock_event.lua); otherwise it marks the figure owed
and tells its caller. The next change after the window publishes the latest figure and clears
the mark. When no change comes, the caller's process publishes it: an OwedStockFigures per
process (one per Scripts) ticks once per window while it holds owed products and runs
db/lua/stock_flush.lua for each, which publishes the counter's current figure if it is still
owed and the window is over. If that process dies first, the reconciler's next run publishes
it (db/lua/stock_reconcile.lua), so a lost flush costs staleness of one reconcile interval, not
a figure that stays wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import redis.exceptions

log = logging.getLogger("rushcart.stock_events")

# A hot product publishes at most one figure per window; watchers see at most 4 a second anyway
# (STOCK_MIN_INTERVAL in resolvers.subscriptions), so 100 ms costs them nothing.
STOCK_EVENT_WINDOW_MS = 100
# stock:pub:<pid> outlives any window by far; it only lapses for products nobody touches.
STOCK_PUB_TTL_SECONDS = 86400


class OwedStockFigures:
    """The products whose figure this process was told is owed, flushed once per window until none is.

    `flush(product_id)` runs stock_flush.lua and returns 0 when done (published, or nothing was
    owed any more) or the ms to wait before the figure may go out.
    """

    def __init__(self, flush: Callable[[int], Awaitable[int]], window_ms: int = STOCK_EVENT_WINDOW_MS) -> None:
        self._flush = flush
        self._window = window_ms / 1000
        self._owed: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def owe(self, product_ids: Iterable[int]) -> None:
        self._owed.update(product_ids)
        if self._owed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="rushcart-stock-flush")

    @property
    def owed(self) -> frozenset[int]:
        return frozenset(self._owed)

    async def _tick(self) -> None:
        while self._owed:
            await asyncio.sleep(self._window)
            for product_id in sorted(self._owed):
                try:
                    done = await self._flush(product_id) == 0
                except redis.exceptions.RedisError as exc:
                    # Kept: the next tick tries again; the reconciler covers a Redis that stays away.
                    log.warning("stock figure of product %s not flushed yet: %s", product_id, exc)
                    continue
                if done:
                    self._owed.discard(product_id)

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every owed figure went out (a job calls this before it returns), or `timeout`
        seconds: a Redis that stays away leaves them to the reconciler."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
