"""Interleavings forced with the real stores: cancel vs expiry, cancel vs persistence, rebuilds."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from db import keys
from db.enums import CancelReason
from db.order_persistence import persist_orders
from db.order_transitions import OrderRef, cancel_in_session, cancel_orders, publish_released
from tests.api import Api
from tests.conftest import hold_persist_jobs, release_persist_jobs, unique
from tests.resolvers.test_orders import CANCEL, available, place
from tests.stack import eventually


async def pg_stock(pg, product: dict[str, Any]) -> int:
    return int(await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"])))


async def buyer(api: Api) -> Api:
    return await api.register(f"{unique('race')}@example.com")


async def test_cancel_racing_the_expiry_sweeper_releases_once(api: Api, make_product, pg, state,
                                                              wait_persisted) -> None:
    """Ten concurrent cancellations of one order (customer and sweeper alike) have one winner."""
    product = await make_product(stock=6)
    client = await buyer(api)
    order = (await place(client, (product, 4)))["order"]
    await wait_persisted([order["id"]])
    me = (await client("{ me { id } }"))["me"]["id"]
    ref = OrderRef(int(me), order["id"])
    results = await asyncio.gather(*[
        cancel_orders(state.backends, [ref], CancelReason.EXPIRED if i % 2 else CancelReason.CUSTOMER)
        for i in range(10)
    ])
    assert 1 == sum(len(r) for r in results)
    assert (6, 6) == (await available(api, product), await pg_stock(pg, product))


async def test_a_repeated_redis_step_after_a_cancel_gives_nothing_back_twice(api: Api, make_product, pg, state,
                                                                             wait_persisted) -> None:
    """The Redis step after a cancel's commit, run again (a retry after a lost reply), changes nothing more."""
    product = await make_product(stock=6, max_per_customer=5)
    client = await buyer(api)
    order = (await place(client, (product, 4)))["order"]
    await wait_persisted([order["id"]])
    me = int((await client("{ me { id } }"))["me"]["id"])
    async with state.backends.sessions() as session, session.begin():
        released = await cancel_in_session(state.backends, session, [OrderRef(me, order["id"])], CancelReason.CUSTOMER)
    await publish_released(state.backends, released)
    await publish_released(state.backends, released)
    assert (6, 6) == (await available(api, product), await pg_stock(pg, product))
    again = (await place(client, (product, 5)))["order"]  # the allowance came back once: 5 more, not 9
    assert again is not None and (await place(client, (product, 1)))["order"] is None


async def test_a_cancel_whose_redis_step_was_lost_is_finished_by_the_sweeper(api: Api, make_product, pg, state,
                                                                           wait_persisted) -> None:
    """A cancel committed without its Redis step (the commit's reply lost, the process gone) gives the
    units and the allowance back once, a few seconds later, through the worker's sweeper."""
    product = await make_product(stock=6, max_per_customer=5)
    client = await buyer(api)
    order = (await place(client, (product, 4)))["order"]
    await wait_persisted([order["id"]])
    me = int((await client("{ me { id } }"))["me"]["id"])
    async with state.backends.sessions() as session, session.begin():
        await cancel_in_session(state.backends, session, [OrderRef(me, order["id"])], CancelReason.CUSTOMER)
    assert (2, 6) == (await available(api, product), await pg_stock(pg, product))

    async def finished() -> bool:
        return await available(api, product) == 6 and not await pg.fetchval(
            "SELECT count(*) FROM status_mirrors WHERE order_id = $1", uuid.UUID(order["id"]))

    await eventually(finished, timeout=30, message="the sweeper to finish the cancel's Redis step")
    again = (await place(client, (product, 5)))["order"]  # the allowance came back once: 5 more, not 9
    assert again is not None and (await place(client, (product, 1)))["order"] is None
    status = await client("query($id: ID!) { order(id: $id) { status cancelReason } }", id=order["id"])
    assert {"status": "CANCELLED", "cancelReason": "CUSTOMER"} == status["order"]


async def test_cancel_racing_persistence_releases_once(api: Api, make_product, pg, state, redis) -> None:
    """A cancel of an order not yet persisted, racing the persistence job, releases its units once."""
    product = await make_product(stock=5)
    client = await buyer(api)
    ids = [str((await place(client, (product, 1)))["order"]["id"]) for _ in range(3)]
    cancels = [client(CANCEL, id=oid) for oid in ids]
    persisting = [persist_orders(state.backends, ids) for _ in range(2)]
    results = await asyncio.gather(*cancels, *persisting)
    assert all(r["cancelOrder"]["order"]["status"] == "CANCELLED" for r in results[:3])
    assert (5, 5) == (await available(api, product), await pg_stock(pg, product))
    assert "0" == await redis.get(keys.stock_held(product["id"]))


async def test_a_listing_racing_persistence_never_loses_an_order(api: Api, make_product, state, redis) -> None:
    """Orders persisted one by one while the customer's list is read over and over: every read lists them all."""
    product = await make_product(stock=40)
    client = await buyer(api)
    me = int((await client("{ me { id } }"))["me"]["id"])
    await hold_persist_jobs(redis)  # keep the worker's job out; only this test persists
    try:
        ids = {str((await place(client, (product, 1)))["order"]["id"]) for _ in range(20)}
        done = asyncio.Event()
        missed: list[set[str]] = []

        async def persist_one_by_one() -> None:
            for oid in sorted(ids):
                await persist_orders(state.backends, [oid])
            done.set()

        async def list_until_done() -> None:
            while not done.is_set():
                listed, _ = await state.orders.list_for_customer(me, 50, None)
                if ids - {r.id for r in listed}:
                    missed.append(ids - {r.id for r in listed})

        await asyncio.gather(persist_one_by_one(), *[list_until_done() for _ in range(4)])
    finally:
        await release_persist_jobs(redis)
    assert [] == missed


async def test_concurrent_rebuilders_write_one_value(api: Api, make_product, state, redis) -> None:
    """Ten rebuilds of a missing counter at once agree, and the counter is right."""
    product = await make_product(stock=9)
    client = await buyer(api)
    await place(client, (product, 2))
    await redis.delete(keys.stock(product["id"]))
    values = await asyncio.gather(*[state.stock.rebuild([int(product["id"])]) for _ in range(10)])
    assert {7} == {v[int(product["id"])] for v in values}
    assert "7" == await redis.get(keys.stock(product["id"]))


async def test_rebuild_counts_orders_not_yet_persisted(api: Api, make_product, state, redis, pg,
                                                       wait_persisted) -> None:
    """A rebuild while an order waits for persistence subtracts its held units; after persistence it still holds."""
    product = await make_product(stock=10)
    client = await buyer(api)
    await hold_persist_jobs(redis)  # keep the job away; only the sweeper may persist
    try:
        order = (await place(client, (product, 3)))["order"]
        await redis.delete(keys.stock(product["id"]))
        assert 7 == await available(api, product)
    finally:
        await release_persist_jobs(redis)
    await wait_persisted([order["id"]])
    assert (7, 7) == (await available(api, product), await pg_stock(pg, product))


async def test_rebuild_blocked_by_persistence_never_over_counts(api: Api, make_product, state, redis, stack,
                                                                wait_persisted) -> None:
    """A rebuild that runs while persistence holds the product row waits for it and never counts a unit twice."""
    from db.engine import asyncpg_dsn

    product = await make_product(stock=10)
    client = await buyer(api)
    holder = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        tx = holder.transaction()
        await tx.start()
        # Stall the persistence job's stock update on this row, as a slow transaction would.
        await holder.execute("SELECT 1 FROM product_stock WHERE product_id = $1 FOR UPDATE", int(product["id"]))
        order = (await place(client, (product, 4)))["order"]
        await redis.delete(keys.stock(product["id"]))
        rebuild = asyncio.create_task(state.stock.rebuild([int(product["id"])]))

        async def persistence_waiting() -> bool:
            return bool(await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))

        await eventually(persistence_waiting, timeout=20, message="someone to wait for the product row")
        await tx.rollback()
        rebuilt = (await rebuild)[int(product["id"])]
    finally:
        await holder.close()
    await wait_persisted([order["id"]])
    assert rebuilt <= 6
    await eventually(lambda: _counter_is(redis, product, 6), timeout=10, message="counter 6 after persistence")
    assert 6 == await available(api, product)


async def _counter_is(redis, product: dict[str, Any], value: int) -> bool:
    return await redis.get(keys.stock(product["id"])) == str(value)


async def test_reconciler_repairs_a_confirmed_drift_only(api: Api, make_product, state, redis) -> None:
    """A counter off from PostgreSQL minus holds is repaired only when a later run, far enough apart, sees it again."""
    from db.stock import reconcile

    product = await make_product(stock=10)
    pid = int(product["id"])
    await redis.set(keys.stock(pid), 13)  # as if a release had been applied twice
    first = await reconcile(state.backends, min_gap_seconds=0.2)
    too_soon = await reconcile(state.backends, min_gap_seconds=60)
    assert pid not in first and pid not in too_soon and "13" == await redis.get(keys.stock(pid))

    async def repaired() -> bool:
        return (await reconcile(state.backends, min_gap_seconds=0.2)).get(pid) == 3

    await eventually(repaired, timeout=5, message="the drift to be confirmed and repaired")
    assert "10" == await redis.get(keys.stock(pid))
