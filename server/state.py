"""Process-wide resources: created in the lifespan, closed there."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from db.accounts import Accounts
from db.carts import CartStore
from db.catalog import Catalog
from db.engine import make_engine, make_sessionmaker
from db.orders import Orders
from db.scripts import Scripts
from db.stock import StockCounters
from jobs.enqueue import JobEnqueuer
from resolvers.context import AppState
from server.settings import Settings


def open_state(settings: Settings) -> AppState:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = make_sessionmaker(engine)
    redis = aioredis.Redis.from_url(settings.redis_url, max_connections=256)
    cache = (
        aioredis.Redis.from_url(settings.cache_redis_url, max_connections=256)
        if settings.cache_redis_url and settings.cache_redis_url != settings.redis_url
        else redis
    )
    scripts = Scripts(redis)
    stock = StockCounters(redis, scripts, sessions)
    return AppState(
        engine=engine,
        sessions=sessions,
        redis=redis,
        cache=cache,
        scripts=scripts,
        stock=stock,
        catalog=Catalog(sessions, cache, stock, settings.product_cache_ttl_seconds),
        accounts=Accounts(sessions, redis, settings.token_ttl_seconds, settings.session_ttl_seconds),
        carts=CartStore(
            redis,
            scripts,
            sessions,
            settings.guest_cart_ttl_days * 86400,
            settings.customer_cart_ttl_days * 86400,
        ),
        orders=Orders(redis, scripts, sessions, stock, settings.order_payment_ttl_seconds),
        enqueuer=JobEnqueuer(settings.redis_url),
        dev_mode=settings.dev,
    )


async def warm_state(state: AppState) -> None:
    """Start-up work that would otherwise land on the first requests."""
    await asyncio.to_thread(state.enqueuer.warm)


async def close_state(state: AppState) -> None:
    state.enqueuer.close()
    if state.cache is not state.redis:
        await state.cache.aclose()
    await state.redis.aclose()
    await state.engine.dispose()
