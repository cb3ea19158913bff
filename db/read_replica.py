"""Reads that may lag go to a streaming replica (DATABASE_READ_URL); a customer's own writes never hide.

Lag-tolerant reads are order history pages and catalogue cache misses. Everything that decides
(buying, cancelling, payments, stock) reads the primary.

Read-your-writes: every commit that changes a customer's orders (persistence, a cancellation, a
payment) is followed by reading the primary's WAL position and storing it as the customer's
mark (`orders:written:{cid}`), before the Redis copy of the order is retired. A history read for
a customer with a mark asks the replica, in the same transaction, whether it has replayed that
far; if not, the read goes to the primary. So a lagging or paused replica costs the customer
nothing but a primary read, however far behind it is, for as long as the mark lives (10 min;
a replica further behind than that should be taken out of rotation). Two commits for one
customer racing to set the mark can leave the earlier position; the window is the time
between a commit and its mark, and an order in it is still on its Redis copy.

A replica that cannot be reached or fails a query (a recovery conflict cancels queries on a hot
standby) sends the read to the primary, and is left alone for a few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import keys
from db.backends import Backends
from db.state_redis import StateRedis

log = logging.getLogger("rushcart.replica")

MARK_TTL_SECONDS = 600
# After a failure the replica is not asked again for this long.
RETRY_AFTER_SECONDS = 5.0

T = TypeVar("T")


async def mark_written(backends: Backends, customer_ids: Iterable[int]) -> None:
    """After a commit that changed these customers' orders: remember how far the primary's WAL was."""
    cids = sorted(set(customer_ids))
    if not backends.marks_writes or not cids:
        return
    async with backends.sessions() as session:
        lsn = str((await session.execute(text("SELECT pg_current_wal_lsn()"))).scalar_one())
    async with backends.redis.pipeline(transaction=False) as pipe:
        for cid in cids:
            pipe.set(keys.orders_written(cid), lsn, ex=MARK_TTL_SECONDS)
        await pipe.execute()


class _Behind(Exception):
    """The replica has not replayed the customer's last write yet."""


class Reads:
    """Runs a lag-tolerant read on the replica when there is one and it will do, else on the primary."""

    def __init__(
        self,
        primary: async_sessionmaker[AsyncSession],
        replica: async_sessionmaker[AsyncSession] | None,
        redis: StateRedis,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._redis = redis
        self._replica_down_until = 0.0

    async def run(self, read: Callable[[AsyncSession], Awaitable[T]], customer_id: int | None = None) -> T:
        """`read(session)` on the replica, or on the primary when there is none, it fails, or (for
        `customer_id`) it has not replayed that customer's last write."""
        if self._replica is not None and time.monotonic() >= self._replica_down_until:
            try:
                return await self._on_replica(self._replica, read, customer_id)
            except _Behind:
                pass
            except (OSError, TimeoutError, DBAPIError) as exc:
                self._replica_down_until = time.monotonic() + RETRY_AFTER_SECONDS
                log.warning("read replica failed (%s); reading the primary for %.0f s", exc, RETRY_AFTER_SECONDS)
        async with self._primary() as session:
            return await read(session)

    async def _on_replica(
        self, replica: async_sessionmaker[AsyncSession], read: Callable[[AsyncSession], Awaitable[T]],
        customer_id: int | None,
    ) -> T:
        mark = await self._redis.get(keys.orders_written(customer_id)) if customer_id is not None else None
        async with replica() as session:
            if mark is not None:
                caught_up = (
                    await session.execute(
                        text("SELECT coalesce(pg_last_wal_replay_lsn() >= CAST(:mark AS pg_lsn), true)"),
                        {"mark": mark.decode() if isinstance(mark, bytes) else str(mark)},
                    )
                ).scalar_one()
                if not caught_up:
                    raise _Behind()
            return await read(session)
