"""A payment racing the expiry sweeper, with the interleaving forced both ways by a held row lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from db.engine import asyncpg_dsn
from db.enums import CancelReason
from db.order_lifecycle import apply_payment_event, apply_payment_events
from db.order_transitions import OrderRef, cancel_orders
from db.payments import PaymentEvent, store_event
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import READ, available, place
from tests.stack import eventually


async def waiting_for_locks(conn: asyncpg.Connection, count: int) -> bool:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )) >= count


@pytest.mark.parametrize("first", ["payment", "expiry"])
async def test_success_racing_expiry_ends_paid_or_refundable_never_both(
    first: str, api: Api, make_product, pg, state, stack, wait_persisted
) -> None:
    """Whoever takes the order row first wins: PAID with no stock back, or CANCELLED + needsRefund with
    stock back once."""
    product = await make_product(stock=5, price_cents=700)
    buyer = await api.register(f"{unique('racer')}@example.com")
    order = (await place(buyer, (product, 2)))["order"]
    await wait_persisted([order["id"]])
    me = int((await buyer("{ me { id } }"))["me"]["id"])
    event = PaymentEvent(id=unique("evt_race_"), type="payment.succeeded", order_id=order["id"], amount_cents=1400,
                         currency="USD", created=int(time.time()), payload={})
    assert await store_event(state.backends.sessions, event)

    def pay() -> Awaitable[Any]:
        return apply_payment_event(state.backends, event.id)

    def expire() -> Awaitable[Any]:
        return cancel_orders(state.backends, [OrderRef(me, order["id"])], CancelReason.EXPIRED)

    order_of_arrival: list[Callable[[], Awaitable[Any]]] = [pay, expire] if first == "payment" else [expire, pay]
    holder = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM orders WHERE customer_id = $1 AND id = $2::uuid FOR UPDATE",
                             me, order["id"])
        tasks = []
        for n, step in enumerate(order_of_arrival, start=1):
            tasks.append(asyncio.create_task(step()))
            await eventually(lambda n=n: waiting_for_locks(holder, n), timeout=20, message=f"{n} waiter(s)")
        await tx.rollback()
        await asyncio.gather(*tasks)
    finally:
        await holder.close()
    final = (await buyer(READ, id=order["id"]))["order"]
    stock = await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))
    if first == "payment":
        assert ("PAID", False, 3, 3) == (final["status"], final["needsRefund"], stock, await available(api, product))
    else:
        assert ("CANCELLED", "EXPIRED", True, 5, 5) == (
            final["status"], final["cancelReason"], final["needsRefund"], stock, await available(api, product))


@pytest.mark.parametrize("persisted", [True, False])
async def test_a_batch_applies_events_in_order_of_receipt_once(
    persisted: bool, api: Api, make_product, pg, state, stack, wait_persisted
) -> None:
    """One batch over orders persisted or still in Redis: each order's events take effect in the order they were
    received (success then failure ends PAID, failure then success ends CANCELLED + needsRefund), the
    failed order's units come back once, and applying the batch again changes nothing."""
    product = await make_product(stock=10, price_cents=500)
    buyer = await api.register(f"{unique('batch')}@example.com")
    if persisted:
        paid_first = (await place(buyer, (product, 1)))["order"]
        failed_first = (await place(buyer, (product, 2)))["order"]
        await wait_persisted([paid_first["id"], failed_first["id"]])
    stack.stop_workers()
    try:
        if not persisted:
            paid_first = (await place(buyer, (product, 1)))["order"]
            failed_first = (await place(buyer, (product, 2)))["order"]

        async def stored(order: dict[str, Any], kind: str) -> str:
            event = PaymentEvent(id=unique("evt_batch_"), type=kind, order_id=order["id"],
                                 amount_cents=order["totalCents"], currency="USD", created=int(time.time()), payload={})
            assert await store_event(state.backends.sessions, event)
            return event.id

        ids = [await stored(paid_first, "payment.succeeded"), await stored(failed_first, "payment.failed"),
               await stored(paid_first, "payment.failed"), await stored(failed_first, "payment.succeeded")]
        await apply_payment_events(state.backends, ids)
        before = {r["id"]: dict(r) for r in await pg.fetch("SELECT * FROM payment_events WHERE id = ANY($1)", ids)}
        assert ["paid", "cancelled", "ignored", "refund_needed"] == [before[i]["outcome"] for i in ids]
        assert {i: "already_applied" for i in ids} == await apply_payment_events(state.backends, ids)
        assert before == {r["id"]: dict(r) for r in await pg.fetch("SELECT * FROM payment_events WHERE id = ANY($1)",
                                                                   ids)}
    finally:
        stack.start_worker()
    await wait_persisted([paid_first["id"], failed_first["id"]])
    final = [(await buyer(READ, id=o["id"]))["order"] for o in (paid_first, failed_first)]
    assert [("PAID", False), ("CANCELLED", True)] == [(o["status"], o["needsRefund"]) for o in final]
    assert 9 == await available(api, product)
    assert 9 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))


async def test_an_event_that_never_reached_the_queue_is_applied_by_the_sweeper(
    api: Api, make_product, state, wait_persisted
) -> None:
    """An event stored but never queued (Redis down after the insert) still turns its order PAID."""
    product = await make_product(price_cents=300)
    buyer = await api.register(f"{unique('swept')}@example.com")
    order = (await place(buyer, (product, 1)))["order"]
    await wait_persisted([order["id"]])
    event = PaymentEvent(id=unique("evt_swept_"), type="payment.succeeded", order_id=order["id"], amount_cents=300,
                         currency="USD", created=int(time.time()), payload={})
    assert await store_event(state.backends.sessions, event)

    async def paid() -> bool:
        return (await buyer(READ, id=order["id"]))["order"]["status"] == "PAID"

    await eventually(paid, timeout=60, message="the sweeper to apply the event")
