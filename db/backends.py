"""What every store and job works with: the state Redis, its scripts, and PostgreSQL sessions.

One value carries the three, so every function that needs them takes `backends` first, the
same way everywhere, and a test can hand in a variant (a Scripts that dies at a chosen step).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.scripts import Scripts
from db.state_redis import StateRedis


@dataclass(frozen=True)
class Backends:
    redis: StateRedis
    scripts: Scripts
    sessions: async_sessionmaker[AsyncSession]
    # A read replica serves order history: commits that change a customer's orders leave a mark
    # (db.read_replica), so the customer's own reads wait for the replica or go to the primary.
    marks_writes: bool = False

    @classmethod
    def of(cls, redis: StateRedis, sessions: async_sessionmaker[AsyncSession], *, marks_writes: bool = False,
           in_steps: bool = False, wait_replicas: int = 0) -> Backends:
        return cls(redis, Scripts(redis, in_steps=in_steps, wait_replicas=wait_replicas), sessions, marks_writes)


def state_client(url: str, *, cluster: bool, max_connections: int = 256) -> StateRedis:
    """The state Redis' client: `cluster`, `url` names any node of a Redis/Valkey Cluster."""
    return cluster_client(url, max_connections) if cluster else redis_client(url, max_connections)


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


# A command sent to a primary that died is sent again, after the cluster's map is read anew, for
# about this long with backoff: longer than a failover takes (node timeout plus an election), so
# buying stalls through one instead of failing.
FAILOVER_RETRIES = 14


def cluster_client(url: str, max_connections: int = 256) -> RedisCluster:
    """A client of a Redis/Valkey Cluster; `max_connections` is per node."""
    return RedisCluster.from_url(
        url,
        max_connections=max_connections,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.02), retries=FAILOVER_RETRIES),
    )
