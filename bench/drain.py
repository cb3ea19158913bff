"""Watching the persistence backlog (the buckets' `orders:topersist` zsets) during and after a burst."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from db.order_persistence import backlog


@dataclass
class Backlog:
    """The orders awaiting persistence (every bucket's) sampled every `interval` seconds, with wall-clock times."""

    redis: Any
    interval: float = 0.025
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), await backlog(self.redis)))
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()

    @property
    def peak(self) -> int:
        return max((n for _, n in self.samples), default=0)

    def empty_since(self, after: float) -> float | None:
        """Wall time of the first sample at or after `after` that saw the backlog empty."""
        return next((t for t, n in self.samples if t >= after and n == 0), None)


async def persisted_count(pg: asyncpg.Pool, order_ids: list[str]) -> int:
    return int(await pg.fetchval("SELECT count(DISTINCT id) FROM orders WHERE id = ANY($1::uuid[])", order_ids))


async def wait_drained(backlog: Backlog, pg: asyncpg.Pool, burst_end: float, order_ids: list[str],
                       timeout: float) -> float | None:
    """Seconds from the end of the burst until the backlog was empty and PostgreSQL held every
    accepted order; None if that did not happen within `timeout`. The backlog is sampled while
    the burst runs, so a backlog that never built up drains in about one sampling interval."""
    deadline = time.monotonic() + timeout
    first_look = True
    while time.monotonic() < deadline:
        empty_at = backlog.empty_since(burst_end)
        if empty_at is not None:
            # By design an order leaves the zset only after its row committed; check it anyway,
            # and if PostgreSQL lags behind the zset, count the time until it caught up.
            if await persisted_count(pg, order_ids) == len(order_ids):
                return max(0.0, (empty_at if first_look else time.time()) - burst_end)
            first_look = False
        await asyncio.sleep(backlog.interval)
    return None
