"""Cart write-behind to PostgreSQL, recovery after Redis loses carts, and the purge of idle carts."""

from __future__ import annotations

import json
import time
from typing import Any

import redis as sync_redis
from rq import Queue

from tests.api import Api
from tests.resolvers.test_carts import ADD, CLEAR, PASSWORD, READ, quantities
from tests.stack import Stack, eventually


async def persisted_lines(pg, owner: str) -> dict[str, int] | None:
    raw = await pg.fetchval("SELECT lines FROM carts WHERE owner = $1", owner)
    return None if raw is None else {k: int(v) for k, v in json.loads(raw).items()}


async def customer_owner(api: Api) -> str:
    me = await api("{ me { id } }")
    return f"customer:{me['me']['id']}"


async def wait_flushed(pg, owner: str, expected: dict[str, int] | None) -> None:
    async def flushed() -> bool:
        return await persisted_lines(pg, owner) == expected

    await eventually(flushed, timeout=20, message=f"cart {owner} to reach PostgreSQL as {expected}")


async def test_changes_reach_postgres_within_the_flush_lag(api: Api, email: str, make_product, pg) -> None:
    """A customer's cart is written to PostgreSQL by the worker within seconds."""
    customer = await api.register(email, PASSWORD)
    product = await make_product()
    await customer(ADD, p=product["id"], q=3)
    await wait_flushed(pg, await customer_owner(customer), {product["id"]: 3})


async def test_a_burst_of_200_adds_is_written_in_a_handful_of_statements(
    api: Api, email: str, make_product, pg
) -> None:
    """Two hundred adds to one cart reach PostgreSQL as a few writes, not two hundred."""
    customer = await api.register(email, PASSWORD)
    owner = await customer_owner(customer)
    products = [await make_product() for _ in range(4)]
    async with pg.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS test_cart_writes (owner text, at timestamptz DEFAULT now());"
            "CREATE OR REPLACE FUNCTION test_log_cart_write() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO test_cart_writes (owner) VALUES (NEW.owner); RETURN NEW; END $$ LANGUAGE plpgsql;"
            "DROP TRIGGER IF EXISTS test_cart_writes ON carts;"
            "CREATE TRIGGER test_cart_writes AFTER INSERT OR UPDATE ON carts "
            "FOR EACH ROW EXECUTE FUNCTION test_log_cart_write();"
        )
    try:
        started = time.monotonic()
        for i in range(200):
            await customer(ADD, p=products[i % 4]["id"], q=1)
        await wait_flushed(pg, owner, {p["id"]: 50 for p in products})
        elapsed = time.monotonic() - started
        writes = await pg.fetchval("SELECT count(*) FROM test_cart_writes WHERE owner = $1", owner)
    finally:
        async with pg.acquire() as conn:
            await conn.execute("DROP TRIGGER IF EXISTS test_cart_writes ON carts")
    # At most one write per flush (every CART_FLUSH_SECONDS = 1 s in the tests) while the adds ran,
    # however slow a loaded machine made them: a write per add would be 200.
    assert 1 <= writes <= min(elapsed + 3, 60), f"{writes} row writes for 200 adds in {elapsed:.1f} s"


async def test_emptied_carts_are_deleted_in_postgres(api: Api, email: str, make_product, pg) -> None:
    """Clearing a cart removes its row after the next flush."""
    customer = await api.register(email, PASSWORD)
    owner = await customer_owner(customer)
    product = await make_product()
    await customer(ADD, p=product["id"], q=1)
    await wait_flushed(pg, owner, {product["id"]: 1})
    await customer(CLEAR)
    await wait_flushed(pg, owner, None)


async def test_a_lost_cart_is_reloaded_before_a_change(api: Api, email: str, make_product, pg, redis) -> None:
    """When Redis loses a cart, the next add starts from the flushed copy rather than from empty."""
    customer = await api.register(email, PASSWORD)
    owner = await customer_owner(customer)
    product = await make_product()
    await customer(ADD, p=product["id"], q=2)
    await wait_flushed(pg, owner, {product["id"]: 2})
    await redis.delete(f"cart:{owner}")
    data = (await customer(ADD, p=product["id"], q=1))["cartAddLine"]
    assert {product["id"]: 3} == quantities(data["cart"])


async def test_merge_works_when_the_customer_cart_is_only_in_postgres(
    api: Api, email: str, make_product, pg, redis
) -> None:
    """Signing in merges into the customer's flushed cart even when Redis no longer has it."""
    a, b = await make_product(), await make_product()
    customer = await api.register(email, PASSWORD)
    owner = await customer_owner(customer)
    await customer(ADD, p=a["id"], q=2)
    await wait_flushed(pg, owner, {a["id"]: 2})
    await redis.delete(f"cart:{owner}")
    guest = await api.start_session()
    await guest(ADD, p=b["id"], q=1)
    await guest(ADD, p=a["id"], q=1)
    data = (await guest(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
        "{ cart { lines { product { id } quantity } } } }", e=email, p=PASSWORD))["login"]
    assert {a["id"]: 3, b["id"]: 1} == quantities(data["cart"])


async def test_carts_survive_flushall(api: Api, email: str, make_product, pg, redis, stack: Stack) -> None:
    """After FLUSHALL, a customer who signs in again and a guest with the same session find their carts."""
    product = await make_product()
    customer = await api.register(email, PASSWORD)
    owner = await customer_owner(customer)
    guest = await api.start_session()
    await customer(ADD, p=product["id"], q=4)
    await guest(ADD, p=product["id"], q=6)
    await wait_flushed(pg, owner, {product["id"]: 4})
    await wait_flushed(pg, f"guest:{guest.session_id}", {product["id"]: 6})
    await redis.flushall()
    again = await api.login(email, PASSWORD)
    assert {product["id"]: 4} == quantities((await again(READ))["cart"])
    assert {product["id"]: 6} == quantities((await guest(READ))["cart"])
    # The worker keeps writing behind after the flush.
    await again(ADD, p=product["id"], q=1)
    await wait_flushed(pg, owner, {product["id"]: 5})


async def test_purge_removes_only_expired_carts(api: Api, email: str, make_product, pg, stack: Stack) -> None:
    """The purge job, run by the worker, deletes carts idle past their TTL and keeps the rest."""
    product = await make_product()
    stale, fresh = await api.start_session(), await api.start_session()
    await stale(ADD, p=product["id"], q=1)
    await fresh(ADD, p=product["id"], q=1)
    stale_owner, fresh_owner = f"guest:{stale.session_id}", f"guest:{fresh.session_id}"
    await wait_flushed(pg, stale_owner, {product["id"]: 1})
    await wait_flushed(pg, fresh_owner, {product["id"]: 1})
    await pg.execute("UPDATE carts SET expires_at = now() - interval '1 day' WHERE owner = $1", stale_owner)
    queue = Queue("maintenance", connection=sync_redis.Redis.from_url(stack.redis_url))
    job: Any = queue.enqueue("jobs.carts.purge_expired_carts")

    async def purged() -> bool:
        return await persisted_lines(pg, stale_owner) is None

    await eventually(purged, timeout=20, message="the stale cart to be purged")
    assert {product["id"]: 1} == await persisted_lines(pg, fresh_owner)
    assert job.id
