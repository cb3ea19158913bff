from __future__ import annotations

import asyncio
import itertools
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from db import buckets, keys
from db.engine import asyncpg_dsn
from tests.api import Api
from tests.stack import Stack, start_stack

_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PgBouncer pass (RUSHCART_TEST_POOLER=pgbouncer) needs the binary; without it, say so."""
    from tests.pgbouncer import pgbouncer_binary

    if os.environ.get("RUSHCART_TEST_POOLER") == "pgbouncer" and pgbouncer_binary() is None:
        skip = pytest.mark.skip(reason="pgbouncer is not installed (.ci/run installs Debian's package)")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    s = start_stack()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Api:
    return Api(stack.graphql_url)


@pytest.fixture(scope="session")
async def redis(stack: Stack) -> AsyncIterator[Any]:
    client: Any = (RedisCluster.from_url(stack.redis_url, decode_responses=True) if stack.cluster is not None
                   else aioredis.Redis.from_url(stack.redis_url, decode_responses=True))
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def queue_redis(stack: Stack) -> AsyncIterator[Any]:
    """Where RQ's queues live: the state Redis, or a server of their own beside a cluster."""
    client = aioredis.Redis.from_url(stack.env.get("QUEUE_REDIS_URL") or stack.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def pg(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(stack.database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


def unique(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def email() -> str:
    return f"{unique('user')}@example.com"


STAFF_EMAIL = "staff-tests@example.com"
STAFF_PASSWORD = "staff password for tests"


@pytest.fixture(scope="session")
async def staff_account(stack: Stack) -> str:
    """A staff account, created with the CLI as an operator would."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "user", "create", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD,
        "--staff", env=stack.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return STAFF_EMAIL


@pytest.fixture
async def staff(staff_account: str, api: Api) -> Api:
    """Signed in afresh per test: a test that flushes Redis takes every token with it."""
    return await api.login(staff_account, STAFF_PASSWORD)


PRODUCT_FIELDS = "id sku name description priceCents currency available maxPerCustomer imageUrl"


@pytest.fixture
def make_product(staff: Api):
    async def make(stock: int = 10, price_cents: int = 1000, max_per_customer: int | None = None,
                   name: str | None = None) -> dict[str, Any]:
        sku = unique("SKU-")
        data = await staff(
            f"mutation($i: ProductInput!) {{ productCreate(input: $i) {{ product {{ {PRODUCT_FIELDS} }} "
            "errors { code message field } } }",
            i={"sku": sku, "name": name or f"Product {sku}", "priceCents": price_cents, "stock": stock,
               "maxPerCustomer": max_per_customer},
        )
        assert data["productCreate"]["errors"] == [], data
        return dict(data["productCreate"]["product"])

    return make


@pytest.fixture(scope="session")
async def state(stack: Stack) -> AsyncIterator[Any]:
    """The server's own stores, opened in the test process against the same PostgreSQL and Redis."""
    from server.settings import Settings
    from server.state import close_state, open_state, warm_state

    settings = Settings.from_env({**stack.env})
    app_state = open_state(settings)
    await warm_state(app_state)
    yield app_state
    await close_state(app_state)


async def hold_persist_jobs(redis: Any) -> None:
    """Set every bucket's persistence-pending flag, as if a job had just been enqueued for each:
    no new order enqueues one, so only the test's own runs (or the sweeper) persist."""
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in range(buckets.count()):
            pipe.set(keys.persist_pending(bucket), "1", px=60_000)
        await pipe.execute()


async def release_persist_jobs(redis: Any) -> None:
    await redis.delete(*[keys.persist_pending(bucket) for bucket in range(buckets.count())])


async def persisted_order_ids(pg: asyncpg.Pool, ids: list[str]) -> set[str]:
    rows = await pg.fetch("SELECT id::text FROM orders WHERE id = ANY($1::uuid[])", ids)
    return {r["id"] for r in rows}


@pytest.fixture
def wait_persisted(pg: asyncpg.Pool):
    """Wait until the worker has written every given order to PostgreSQL."""
    from tests.stack import eventually

    async def wait(ids: list[str], timeout: float = 30) -> None:
        async def done() -> bool:
            return await persisted_order_ids(pg, ids) == set(ids)

        await eventually(done, timeout=timeout, message=f"{len(ids)} orders to be persisted")

    return wait
