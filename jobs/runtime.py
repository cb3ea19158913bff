"""What a job runs on inside a worker process: one event loop, engine and Redis client.

Workers are RQ SimpleWorkers (no fork per job), so these live as long as the worker and a job
pays no connection set-up. The worker command calls `configure` before it starts working.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from db import buckets
from db.backends import Backends, state_client
from db.carts import CartTTLs
from db.engine import make_engine, make_sessionmaker


@dataclass(frozen=True)
class JobConfig:
    database_url: str
    redis_url: str
    persist_batch_size: int = 500
    redis_buckets: int = buckets.DEFAULT_COUNT
    guest_cart_ttl_days: int = 30
    customer_cart_ttl_days: int = 90
    statement_cache: bool = True  # off behind a transaction-pooling PgBouncer (DATABASE_POOLER)
    marks_writes: bool = False  # a read replica serves order history (DATABASE_READ_URL)
    in_steps: bool = False  # changes spanning slots run in steps, as a cluster needs (RESERVE_IN_STEPS)
    redis_cluster: bool = False  # redis_url names any node of a cluster (REDIS_CLUSTER)
    wait_replicas: int = 0  # cancellations count once replicas hold them (REDIS_WAIT_REPLICAS)

    @classmethod
    def from_env(cls) -> JobConfig:
        """For a job run outside `rushcart worker` (which configures the runtime from its settings)."""
        env = os.environ

        def on(name: str) -> bool:
            return env.get(name, "").lower() in {"1", "true", "yes", "on"}

        return cls(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"],
                   redis_buckets=int(env.get("REDIS_BUCKETS") or buckets.DEFAULT_COUNT),
                   statement_cache=env.get("DATABASE_POOLER", "none") == "none",
                   marks_writes=env.get("DATABASE_READ_URL", "") not in {"", env["DATABASE_URL"]},
                   in_steps=on("RESERVE_IN_STEPS") or on("REDIS_CLUSTER"), redis_cluster=on("REDIS_CLUSTER"),
                   wait_replicas=int(env.get("REDIS_WAIT_REPLICAS") or 0))

    @property
    def cart_ttls(self) -> CartTTLs:
        return CartTTLs(self.guest_cart_ttl_days * 86400, self.customer_cart_ttl_days * 86400)


class Runtime:
    def __init__(self, config: JobConfig) -> None:
        self.config = config
        buckets.configure(config.redis_buckets)
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = make_engine(config.database_url, pool_size=2, statement_cache=config.statement_cache)
        self.backends = Backends.of(state_client(config.redis_url, cluster=config.redis_cluster, max_connections=16),
                                    make_sessionmaker(self.engine),
                                    marks_writes=config.marks_writes, in_steps=config.in_steps,
                                    wait_replicas=config.wait_replicas)

    def close(self) -> None:
        async def _close() -> None:
            await self.backends.scripts.aclose()
            await self.backends.redis.aclose()
            await self.engine.dispose()

        self.loop.run_until_complete(_close())
        self.loop.close()


_runtime: Runtime | None = None
T = TypeVar("T")


def configure(config: JobConfig) -> Runtime:
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = Runtime(config)
    return _runtime


def current() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(JobConfig.from_env())
    return _runtime


def run(body: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run an async job body on the worker's loop, and publish the stock figures it left owed
    (db.stock_events) before returning: between jobs the loop does not run."""
    rt = current()

    async def settled() -> T:
        result = await body(rt)
        await rt.backends.scripts.owed_stock.settle()
        return result

    return rt.loop.run_until_complete(settled())


def shutdown() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None
