"""Process-wide resources: created in the lifespan, closed there."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from db import buckets, keys
from db.accounts import Accounts, SignInLimits
from db.backends import Backends, redis_client, state_client
from db.carts import CartStore, CartTTLs
from db.catalog import Catalog
from db.drop_line import DropLine, stop_ticker
from db.drops import Drops
from db.engine import make_engine, make_sessionmaker
from db.events import EventHub
from db.orders import Orders
from db.read_replica import Reads
from db.session_ids import SessionIds
from db.state_redis import StateRedis
from db.stock import StockCounters
from jobs.enqueue import JobEnqueuer
from server.settings import Settings

log = logging.getLogger("rushcart.state")


@dataclass
class AppState:
    """Created once per process in the server's lifespan and closed there. Resolvers see it through
    resolvers.context.Services, the part of it they may use."""

    engine: AsyncEngine
    backends: Backends
    cache: StateRedis
    stock: StockCounters
    catalog: Catalog
    accounts: Accounts
    carts: CartStore
    orders: Orders
    enqueuer: JobEnqueuer
    events: EventHub
    drops: Drops
    drop_line: DropLine
    dev_mode: bool = False
    read_engine: AsyncEngine | None = None
    # Advances the live drops' lines (db.drop_line); started in warm_state.
    drop_ticker: asyncio.Task[None] | None = None

    @property
    def redis(self) -> StateRedis:
        return self.backends.redis


# A read replica that does not answer is given up on quickly: the read goes to the primary.
REPLICA_CONNECT_TIMEOUT_SECONDS = 2.0


def open_state(settings: Settings) -> AppState:
    buckets.configure(settings.redis_buckets)
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         statement_cache=settings.statement_cache)
    read_engine = (
        make_engine(settings.database_read_url, pool_size=settings.db_pool_size,
                    statement_cache=settings.statement_cache, connect_timeout=REPLICA_CONNECT_TIMEOUT_SECONDS)
        if settings.database_read_url and settings.database_read_url != settings.database_url
        else None
    )
    redis = state_client(settings.redis_url, cluster=settings.redis_cluster)
    backends = Backends.of(redis, make_sessionmaker(engine), marks_writes=read_engine is not None,
                           in_steps=settings.in_steps, wait_replicas=settings.redis_wait_replicas)
    reads = Reads(backends.sessions, make_sessionmaker(read_engine) if read_engine else None, redis)
    cache = (
        redis_client(settings.cache_redis_url)
        if settings.cache_redis_url and settings.cache_redis_url != settings.redis_url
        else redis
    )
    stock = StockCounters(backends)
    drops = Drops(backends)
    drop_line = DropLine(backends, drops, stock, settings.drop_joins_per_minute)
    return AppState(
        engine=engine,
        backends=backends,
        cache=cache,
        stock=stock,
        catalog=Catalog(backends.sessions, cache, stock, settings.product_cache_ttl_seconds, reads),
        accounts=Accounts(
            backends,
            settings.token_ttl_seconds,
            SessionIds(settings.session_key, settings.session_ttl_seconds),
            SignInLimits(
                per_account_and_client=settings.login_attempts_per_window,
                per_client=settings.login_attempts_per_client,
                per_account=settings.login_attempts_per_account,
                window_seconds=settings.login_window_seconds,
                session_starts_per_client_per_minute=settings.session_starts_per_minute,
            ),
        ),
        carts=CartStore(
            backends, CartTTLs(settings.guest_cart_ttl_days * 86400, settings.customer_cart_ttl_days * 86400)
        ),
        orders=Orders(backends, stock, settings.order_payment_ttl_seconds, reads, drop_line,
                      in_steps=settings.in_steps),
        enqueuer=JobEnqueuer(settings.effective_queue_redis_url),
        events=EventHub(redis),
        drops=drops,
        drop_line=drop_line,
        dev_mode=settings.dev,
        read_engine=read_engine,
    )


async def warm_state(state: AppState) -> None:
    """Start-up work that would otherwise land on the first requests."""
    await asyncio.to_thread(state.enqueuer.warm)
    confirmer = state.backends.scripts.confirmer
    if confirmer is not None:
        for primary, replicas in (await confirmer.short_of_replicas()).items():
            log.warning("REDIS_WAIT_REPLICAS=%d but %s has %d replica(s) connected: orders touching it are told "
                        "TRY_AGAIN until it has enough", confirmer.replicas, primary, replicas)
    state.events.watch(keys.TOKENS_CHANNEL, state.accounts.on_token_event)
    await state.events.start()
    state.drop_ticker = asyncio.create_task(state.drop_line.run_ticker(), name="rushcart-drop-ticker")


async def close_state(state: AppState) -> None:
    await stop_ticker(state.drop_ticker)
    # Owed stock figures still go out on a clean shutdown; a crash leaves them to the reconciler.
    await state.backends.scripts.owed_stock.settle(timeout=1.0)
    await state.backends.scripts.aclose()
    await state.events.close()
    await state.enqueuer.aclose()
    if state.cache is not state.redis:
        await state.cache.aclose()
    await state.redis.aclose()
    await state.engine.dispose()
    if state.read_engine is not None:
        await state.read_engine.dispose()


def freeze_startup_heap() -> None:
    """Move what start-up built (schema, plans, modules, pools) out of the garbage collector's view.

    Those objects live as long as the process; left in the oldest generation, every full
    collection walks all of them. Under load, requests in flight survive young collections and
    trigger full ones often: freezing cut the API's CPU per order by about a third at 32
    concurrent requests per process (`make bench`, "API server CPU per request").
    """
    gc.collect()
    gc.freeze()


# A crowd this large is frozen as it grows (and again at every quarter more).
CROWD_FREEZE_MIN = 200


async def freeze_crowds(hub: EventHub, every: float = 1.0) -> None:
    """Keep a crowd of subscribers' connections out of the garbage collector's view, as start-up's heap is.

    Each subscriber holds its connection's objects for as long as it watches, and while a crowd
    arrives the collector's own rule (a full collection whenever the long-lived objects grew by a
    quarter) walks all of them again and again: with 10,000 watchers connecting, 17 full
    collections grew from 18 ms to 1.4 s each, pauses every purchase on the process waited out.
    Frozen at each quarter of growth, a full collection walks only what came since. When the crowd
    has halved, everything is unfrozen, collected once (what the leavers left in cycles is freed
    then, at a quiet moment) and frozen again.
    """
    frozen_at = 0
    while True:
        await asyncio.sleep(every)
        count = hub.subscriber_count
        if count >= max(CROWD_FREEZE_MIN, frozen_at + frozen_at // 4 + 1):
            gc.freeze()
            frozen_at = count
        elif frozen_at and count < frozen_at // 2:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            frozen_at = count
