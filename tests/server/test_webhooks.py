"""The payment webhook: signatures, every answer code, duplicates, and what each event does."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from server.webhooks import sign
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import READ, available, place
from tests.stack import TEST_ENV, Stack, eventually

SECRET = TEST_ENV["PAYMENT_WEBHOOK_SECRET"]


def event(order: dict[str, Any] | None = None, kind: str = "payment.succeeded", **data: Any) -> dict[str, Any]:
    body = {"id": unique("evt_"), "type": kind, "created": int(time.time()),
            "data": {"order_id": order["id"] if order else "none", "currency": "USD",
                     "amount_cents": order["totalCents"] if order else 100}}
    body["data"].update(data)
    return body


async def post(stack: Stack, body: dict[str, Any] | bytes, *, signature: str | None = "auto",
               client: httpx.AsyncClient | None = None) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["Payment-Signature"] = sign(SECRET, raw)
    elif signature is not None:
        headers["Payment-Signature"] = signature
    if client is not None:
        return await client.post(f"{stack.base_url}/webhooks/payments", content=raw, headers=headers)
    async with httpx.AsyncClient(timeout=30) as own:
        return await own.post(f"{stack.base_url}/webhooks/payments", content=raw, headers=headers)


async def status_of(client: Api, order_id: str) -> dict[str, Any]:
    return dict((await client(READ, id=order_id))["order"])


async def wait_status(client: Api, order_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        read = await status_of(client, order_id)
        return read if read["status"] == status else None

    return dict(await eventually(reached, timeout=timeout, message=f"order {order_id} to be {status}"))


@pytest.fixture
async def buyer(api: Api) -> Api:
    return await api.register(f"{unique('payer')}@example.com")


@pytest.mark.parametrize(("signature", "why"), [
    (None, "missing"),
    ("t=123,v1=abc", "too old"),
    (f"t={int(time.time())},v1={'0' * 64}", "wrong digest"),
    ("garbage", "malformed"),
])
async def test_bad_signatures_are_401(stack: Stack, signature: str | None, why: str) -> None:
    """A missing, stale, wrong or malformed signature is refused with 401 and stores nothing."""
    body = event()
    response = await post(stack, body, signature=signature)
    assert 401 == response.status_code, why
    assert "error" in response.json()


async def test_signature_with_another_secret_or_changed_body_is_401(stack: Stack) -> None:
    """A signature made with another key, or over other bytes, does not verify."""
    body = json.dumps(event()).encode()
    assert 401 == (await post(stack, body, signature=sign("another secret", body))).status_code
    assert 401 == (await post(stack, body + b" ", signature=sign(SECRET, body))).status_code
    late = sign(SECRET, body, int(time.time()) - 301)
    assert 401 == (await post(stack, body, signature=late)).status_code


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    json.dumps({"id": "evt_x", "type": "payment.refunded", "created": 1, "data": {}}).encode(),
    json.dumps({"id": "evt_x", "type": "payment.succeeded", "created": "yesterday",
                "data": {"order_id": "x", "amount_cents": 1, "currency": "USD"}}).encode(),
    json.dumps({"id": "evt_x", "type": "payment.succeeded", "created": 1,
                "data": {"order_id": "x", "amount_cents": -5, "currency": "USD"}}).encode(),
])
async def test_malformed_bodies_are_400_with_a_message(stack: Stack, body: bytes) -> None:
    """Correctly signed but malformed events are 400 with an error message."""
    response = await post(stack, body)
    assert 400 == response.status_code
    assert response.json()["error"]


async def test_bodies_over_64_kib_are_413(stack: Stack) -> None:
    """An oversized body is refused before it is read whole."""
    body = json.dumps({**event(), "padding": "x" * 70_000}).encode()
    assert 413 == (await post(stack, body)).status_code


async def test_success_marks_the_order_paid(stack: Stack, buyer: Api, make_product, pg) -> None:
    """A signed success with the right amount turns a PENDING order PAID and stores the event."""
    product = await make_product(stock=5, price_cents=2599)
    order = (await place(buyer, (product, 1)))["order"]
    body = event(order)
    response = await post(stack, body)
    assert (202, "accepted") == (response.status_code, response.json()["status"])
    paid = await wait_status(buyer, order["id"], "PAID")
    assert paid["paidAt"] is not None and not paid["needsRefund"]
    assert ("applied", "paid") == tuple(await pg.fetchrow(
        "SELECT state, outcome FROM payment_events WHERE id = $1", body["id"]))


async def test_duplicates_answer_200_and_change_nothing(stack: Stack, buyer: Api, make_product, pg) -> None:
    """The same event again is 200; ten at once give one 202 and nine 200."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    body = event(order)
    first, again = await post(stack, body), await post(stack, body)
    assert (202, 200) == (first.status_code, again.status_code)
    burst = event(order)
    async with httpx.AsyncClient(timeout=30) as client:
        codes = sorted(r.status_code for r in await asyncio.gather(*[post(stack, burst, client=client)
                                                                      for _ in range(10)]))
    assert [200] * 9 + [202] == codes
    assert 1 == await pg.fetchval("SELECT count(*) FROM payment_events WHERE id = $1", burst["id"])


async def test_failure_cancels_and_releases_stock(stack: Stack, buyer: Api, api: Api, make_product) -> None:
    """payment.failed cancels a PENDING order with PAYMENT_FAILED and returns its units."""
    product = await make_product(stock=4)
    order = (await place(buyer, (product, 3)))["order"]
    assert 202 == (await post(stack, event(order, "payment.failed"))).status_code
    cancelled = await wait_status(buyer, order["id"], "CANCELLED")
    assert "PAYMENT_FAILED" == cancelled["cancelReason"]
    assert 4 == await available(api, product)


async def test_wrong_amount_keeps_the_order_pending_for_review(stack: Stack, buyer: Api, make_product, pg) -> None:
    """A success for the wrong amount or currency leaves the order PENDING and the event in review."""
    product = await make_product(price_cents=1000)
    order = (await place(buyer, (product, 1)))["order"]
    wrong_amount, wrong_currency = event(order, amount_cents=999), event(order, currency="EUR")
    for body in (wrong_amount, wrong_currency):
        assert 202 == (await post(stack, body)).status_code

    async def reviewed() -> bool:
        states = await pg.fetch("SELECT state FROM payment_events WHERE id = ANY($1)",
                                [wrong_amount["id"], wrong_currency["id"]])
        return [r["state"] for r in states] == ["review", "review"]

    await eventually(reviewed, timeout=20, message="both events to be marked for review")
    assert "PENDING" == (await status_of(buyer, order["id"]))["status"]


async def test_success_after_cancellation_flags_a_refund(stack: Stack, buyer: Api, make_product) -> None:
    """Money for an order already cancelled leaves it CANCELLED with needsRefund true."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    await buyer("mutation($id: ID!) { cancelOrder(id: $id) { errors { code } } }", id=order["id"])
    assert 202 == (await post(stack, event(order))).status_code

    async def flagged() -> bool:
        return bool((await status_of(buyer, order["id"]))["needsRefund"])

    await eventually(flagged, timeout=20, message="needsRefund")
    assert "CANCELLED" == (await status_of(buyer, order["id"]))["status"]


async def test_second_success_does_nothing_more(stack: Stack, buyer: Api, make_product, pg) -> None:
    """A second, different success event for a PAID order is stored and changes nothing."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    await post(stack, event(order))
    paid = await wait_status(buyer, order["id"], "PAID")
    second = event(order)
    await post(stack, second)

    async def applied() -> bool:
        return await pg.fetchval("SELECT outcome FROM payment_events WHERE id = $1", second["id"]) == "already_paid"

    await eventually(applied, timeout=20, message="the second event to be applied")
    assert paid == await status_of(buyer, order["id"])


async def test_events_for_unknown_orders_are_kept(stack: Stack, pg) -> None:
    """An event for an order id that does not exist is accepted, stored and left for review."""
    body = event(None)
    body["data"]["order_id"] = "01890000-0000-7000-8000-000000000000"
    assert 202 == (await post(stack, body)).status_code

    async def waiting() -> bool:
        return await pg.fetchval("SELECT state FROM payment_events WHERE id = $1", body["id"]) == "waiting"

    await eventually(waiting, timeout=20, message="the event to wait for its order")


async def test_early_events_are_applied_when_the_order_is_persisted(
    stack: Stack, buyer: Api, api: Api, make_product, pg, wait_persisted
) -> None:
    """With the worker stopped, an early success and an early failure are stored; once workers run,
    the paid order is PAID (never expired) and the failed one CANCELLED with its stock back."""
    product = await make_product(stock=10)
    stack.stop_workers()
    try:
        to_pay = (await place(buyer, (product, 2)))["order"]
        to_fail = (await place(buyer, (product, 3)))["order"]
        assert 202 == (await post(stack, event(to_pay))).status_code
        assert 202 == (await post(stack, event(to_fail, "payment.failed"))).status_code
        assert ("PENDING", "PENDING") == ((await status_of(buyer, to_pay["id"]))["status"],
                                          (await status_of(buyer, to_fail["id"]))["status"])
    finally:
        stack.start_worker()
    await wait_status(buyer, to_pay["id"], "PAID")
    await wait_status(buyer, to_fail["id"], "CANCELLED")
    await wait_persisted([to_pay["id"], to_fail["id"]])
    assert 8 == await available(api, product)
    assert 8 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))


async def test_dev_pay_route_sends_a_signed_event(stack: Stack, buyer: Api, make_product) -> None:
    """In development, POST /dev/pay pays an order through the real webhook path."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{stack.base_url}/dev/pay", json={"orderId": order["id"]})
        missing = await client.post(f"{stack.base_url}/dev/pay", json={"orderId": "nope"})
    assert (202, 404) == (response.status_code, missing.status_code)
    await wait_status(buyer, order["id"], "PAID")


async def payment_jobs(redis: Any) -> set[str]:
    """Ids of the RQ jobs that apply payment events (queued or kept after they ran), on the queue Redis."""
    found = set()
    async for key in redis.scan_iter(match="rq:job:*", count=1000):
        description = await redis.hget(key, "description") if await redis.type(key) == "hash" else None
        if description and description.startswith("jobs.payments.apply"):
            found.add(key)
    return found


async def test_a_burst_of_webhooks_is_applied_in_batches(
    stack: Stack, api: Api, make_product, pg, queue_redis, wait_persisted
) -> None:
    """300 signed webhooks at once, for persisted orders and orders still in Redis, a duplicate and two
    failures among them: a few jobs apply them all, every order ends PAID or CANCELLED once, units back once."""
    product = await make_product(stock=1000)
    buyers = [await api.register(f"{unique('burst')}@example.com") for _ in range(3)]

    async def place_many(count: int) -> list[dict[str, Any]]:
        placed = []
        for start in range(0, count, 30):
            placed += await asyncio.gather(*[place(buyers[n % 3], (product, 1))
                                             for n in range(start, min(start + 30, count))])
        return [p["order"] for p in placed]

    persisted = await place_many(150)
    await wait_persisted([o["id"] for o in persisted])
    stack.stop_workers()
    try:
        in_redis = await place_many(150)
        orders = persisted + in_redis
        failing = {persisted[0]["id"], in_redis[0]["id"]}
        bodies = [event(o, "payment.failed" if o["id"] in failing else "payment.succeeded") for o in orders]
        jobs_before = await payment_jobs(queue_redis)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
            answers = await asyncio.gather(*[post(stack, body, client=client) for body in [*bodies, bodies[7]]])
        assert [200] + [202] * 300 == sorted(a.status_code for a in answers)
        jobs = await payment_jobs(queue_redis) - jobs_before
        # One job per 5 s of burst at most (the pending flag's life), however slow the machine.
        assert 1 <= len(jobs) <= 30, f"{len(jobs)} jobs for 300 events"
    finally:
        stack.start_worker()
    ids = [o["id"] for o in orders]

    async def settled() -> bool:
        rows = await pg.fetch("SELECT status, count(*) AS n FROM orders WHERE id = ANY($1::uuid[]) GROUP BY status",
                              ids)
        return {r["status"]: r["n"] for r in rows} == {"PAID": 298, "CANCELLED": 2}

    await eventually(settled, timeout=60, message="298 orders PAID and 2 CANCELLED")
    outcomes = await pg.fetch("SELECT outcome, count(*) AS n FROM payment_events WHERE id = ANY($1) GROUP BY outcome",
                              [b["id"] for b in bodies])
    assert {"paid": 298, "cancelled": 2} == {r["outcome"]: r["n"] for r in outcomes}
    assert 1000 - 298 == await available(api, product)
    await wait_persisted(ids)
    assert 1000 - 298 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))
    assert "PAYMENT_FAILED" == (await status_of(buyers[0], persisted[0]["id"]))["cancelReason"]
