"""The worker side of orders: batched persistence, crashes, the sweeper, expiry, and Redis loss."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from db import keys
from tests.api import Api
from tests.conftest import hold_persist_jobs, persisted_order_ids, release_persist_jobs, unique
from tests.resolvers.test_orders import CANCEL, READ, available, place
from tests.stack import Stack, eventually


async def product_stock(pg, product: dict[str, Any]) -> int:
    return int(await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"])))


async def test_worker_killed_mid_batch_loses_and_doubles_nothing(
    stack: Stack, api: Api, make_product, pg, redis, wait_persisted
) -> None:
    """kill -9 of a worker halfway through a backlog, then a new worker: every order lands once."""
    product = await make_product(stock=1000)
    buyer = await api.register(f"{unique('backlog')}@example.com")
    stack.stop_workers()
    try:
        sem = asyncio.Semaphore(20)

        async def one() -> str:
            async with sem:
                return str((await place(buyer, (product, 1)))["order"]["id"])

        ids = await asyncio.gather(*[one() for _ in range(600)])
        victim = stack.start_worker(PERSIST_BATCH_SIZE="25")

        async def partly() -> bool:
            return 0 < len(await persisted_order_ids(pg, ids)) < len(ids)

        await eventually(partly, timeout=30, interval=0.01, message="the first batches to land")
        victim.kill()
        victim.wait()
        stack.workers.remove(victim)
    finally:
        stack.start_worker()
    await wait_persisted(ids, timeout=60)
    assert 600 == await pg.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])", ids)
    assert 400 == await product_stock(pg, product)
    assert (400, "0") == (await available(api, product), await redis.get(keys.stock_held(product["id"])))


async def test_persisting_twice_changes_nothing_more(api: Api, make_product, pg, redis, state) -> None:
    """Two persistence runs over the same orders at once insert each once and decrement stock once."""
    from db.order_persistence import persist_orders

    product = await make_product(stock=10)
    buyer = await api.register(f"{unique('twice')}@example.com")
    await hold_persist_jobs(redis)  # keep the worker's job out; only these runs race
    try:
        ids = [str((await place(buyer, (product, 2)))["order"]["id"]) for _ in range(3)]
        results = await asyncio.gather(*[
            persist_orders(state.backends, ids) for _ in range(3)])
    finally:
        await release_persist_jobs(redis)
    assert 3 == sum(results)  # rows inserted over all three runs: each order once
    assert set(ids) == await persisted_order_ids(pg, ids)
    assert 3 == await pg.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])", ids)
    assert 4 == await product_stock(pg, product)
    assert (4, "0") == (await available(api, product), await redis.get(keys.stock_held(product["id"])))


async def test_sweeper_persists_an_order_nobody_enqueued(api: Api, make_product, redis, wait_persisted) -> None:
    """An order whose persistence job was never enqueued is found by the sweeper and persisted."""
    product = await make_product(stock=5)
    buyer = await api.register(f"{unique('sweep')}@example.com")
    # As if another request had just enqueued a job that then got lost with its process.
    await hold_persist_jobs(redis)
    try:
        order = (await place(buyer, (product, 1)))["order"]
        assert await redis.zscore(keys.orders_to_persist_of(order["id"]), order["id"]) is not None
        await wait_persisted([order["id"]], timeout=30)
    finally:
        await release_persist_jobs(redis)


async def test_expired_orders_are_cancelled_and_release_stock(api: Api, make_product, pg, wait_persisted) -> None:
    """A PENDING order past expiresAt is CANCELLED with EXPIRED by the sweeper, and its units return."""
    product = await make_product(stock=5)
    buyer = await api.register(f"{unique('expire')}@example.com")
    order = (await place(buyer, (product, 2)))["order"]
    await wait_persisted([order["id"]])
    await pg.execute("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1::uuid", order["id"])

    async def expired() -> dict[str, Any] | None:
        read = (await buyer(READ, id=order["id"]))["order"]
        return read if read["status"] == "CANCELLED" else None

    read = await eventually(expired, timeout=20, message="the sweeper to expire the order")
    assert "EXPIRED" == read["cancelReason"]
    assert (5, 5) == (await available(api, product), await product_stock(pg, product))
    late = (await buyer(CANCEL, id=order["id"]))["cancelOrder"]
    assert ["ORDER_NOT_CANCELLABLE"] == [e["code"] for e in late["errors"]]


async def test_flushall_after_persistence_rebuilds_counters(api: Api, make_product, redis, wait_persisted) -> None:
    """After FLUSHALL, available is rebuilt from PostgreSQL and buying works again after signing in."""
    product = await make_product(stock=8, max_per_customer=5)
    email = f"{unique('flush')}@example.com"
    buyer = await api.register(email)
    order = (await place(buyer, (product, 3)))["order"]
    await wait_persisted([order["id"]])
    await redis.flushall()
    assert 5 == await available(api, product)
    again = await api.login(email)
    over = await place(again, (product, 3))
    assert [("PURCHASE_LIMIT_EXCEEDED", 2)] == [(e["code"], e["available"]) for e in over["errors"]]
    ok = await place(again, (product, 2))
    assert ("PENDING", 3) == (ok["order"]["status"], await available(api, product))


async def test_an_order_accepted_before_buckets_is_still_read_rebuilt_around_and_persisted(
    api: Api, make_product, pg, redis, state, stack: Stack
) -> None:
    """An order left in Redis by the version before buckets (UUIDv7 id, old key names, the old global
    queue) is readable by its owner, held back from a rebuilt counter, and persisted once, its old
    holds not taken off the new counters."""
    if stack.cluster is not None:
        pytest.skip("orders made before buckets predate cluster mode: a cluster never holds one")
    import json
    import time

    from uuid6 import uuid7

    from db.order_persistence import persist_every_queue

    product = await make_product(stock=10, price_cents=700)
    pid = int(product["id"])
    email = f"{unique('legacy')}@example.com"
    buyer = await api.register(email)
    cid = int(await pg.fetchval("SELECT id FROM customers WHERE email = $1", email))
    oid, now_ms = str(uuid7()), int(time.time() * 1000)
    # What the reservation script of the version before buckets wrote for one order of 2 units.
    await redis.hset(f"order:{oid}", mapping={
        "id": oid, "customer_id": cid, "status": "PENDING", "lines": json.dumps([[pid, 2, 700]]),
        "total_cents": 1400, "currency": "USD", "created_ms": now_ms, "expires_ms": now_ms + 900_000,
        "fingerprint": f"lines:{pid}x2", "idem_key": f"idem:{cid}:legacy", "persisted": "0"})
    await redis.incrby(f"stock:held:{pid}", 2)
    await redis.sadd(f"orders:inflight:{cid}", oid)
    await redis.zadd(keys.LEGACY_ORDERS_TO_PERSIST, {oid: now_ms})

    read = (await buyer(READ, id=oid))["order"]
    assert ("PENDING", 1400) == (read["status"], read["totalCents"])
    await redis.delete(keys.stock(pid))
    assert 8 == await available(api, product)  # rebuilt: PostgreSQL's 10 less the 2 the old order holds
    await persist_every_queue(state.backends, 500)
    assert {oid} == await persisted_order_ids(pg, [oid])
    assert (8, 8) == (await product_stock(pg, product), await available(api, product))
    left = await redis.zscore(keys.LEGACY_ORDERS_TO_PERSIST, oid)
    assert (None, None) == (await redis.get(keys.stock_held(pid)), left)
