"""What every store and job works with: the state Redis, its scripts, and PostgreSQL sessions.

One value carries the three, so every function that needs them takes `backends` first, the
same way everywhere, and a test can hand in a variant (a Scripts that dies at a chosen step).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.scripts import Scripts


@dataclass(frozen=True)
class Backends:
    redis: Redis
    scripts: Scripts
    sessions: async_sessionmaker[AsyncSession]
    # A read replica serves order history: commits that change a customer's orders leave a mark
    # (db.read_replica), so the customer's own reads wait for the replica or go to the primary.
    marks_writes: bool = False

    @classmethod
    def of(cls, redis: Redis, sessions: async_sessionmaker[AsyncSession], *, marks_writes: bool = False) -> Backends:
        return cls(redis, Scripts(redis), sessions, marks_writes)


def redis_client(url: str, max_connections: int = 256) -> Redis:
    """An asyncio client whose burst waits for a free connection instead of failing with "Too many
    connections", and whose requests retry on a fresh connection after a Redis restart instead of
    failing on a connection that died with it."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), retries=3),
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
