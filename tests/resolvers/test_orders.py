"""Buying: placeOrder and checkout, all-or-nothing, limits, idempotency, no oversell, reading, cancelling."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from db import buckets, keys
from tests.api import Api
from tests.conftest import unique

ORDER = ("order { id status cancelReason needsRefund totalCents currency createdAt expiresAt paidAt cancelledAt "
         "lines { product { id available } quantity unitPriceCents } }")
PLACE = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         f"{{ {ORDER} errors {{ code message field productId available remainingAllowance }} }} }}")
CHECKOUT = (f"mutation($k: String!) {{ checkout(idempotencyKey: $k) {{ {ORDER} "
            "errors { code message field productId available } } }")
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ {ORDER} errors {{ code message }} }} }}"
READ = f"query($id: ID!) {{ {ORDER.replace('order {', 'order(id: $id) {', 1)} }}"
AVAILABLE = "query($id: ID!) { product(id: $id) { available } }"


def lines(*pairs: tuple[dict[str, Any], int]) -> list[dict[str, Any]]:
    return [{"productId": p["id"], "quantity": q} for p, q in pairs]


async def place(client: Api, *pairs: tuple[dict[str, Any], int], key: str | None = None) -> dict[str, Any]:
    return dict((await client(PLACE, l=lines(*pairs), k=key or unique("k")))["placeOrder"])


async def available(api: Api, product: dict[str, Any]) -> int:
    return int((await api(AVAILABLE, id=product["id"]))["product"]["available"])


@pytest.fixture
async def buyer(api: Api, email: str) -> Api:
    return await api.register(email)


async def test_buying_needs_a_signed_in_customer(api: Api, make_product) -> None:
    """Guests get NOT_AUTHENTICATED from placeOrder and checkout."""
    product = await make_product()
    guest = await api.start_session()
    placed = await place(guest, (product, 1))
    checked = (await guest(CHECKOUT, k="k1"))["checkout"]
    assert (["NOT_AUTHENTICATED"], ["NOT_AUTHENTICATED"]) == (
        [e["code"] for e in placed["errors"]], [e["code"] for e in checked["errors"]])


async def test_place_order_answers_pending_and_reserves_at_once(buyer: Api, api: Api, make_product,
                                                                wait_persisted, pg) -> None:
    """The order comes back PENDING with prices and expiry; available drops at once; the worker persists it."""
    a = await make_product(stock=10, price_cents=1500)
    b = await make_product(stock=5, price_cents=250)
    data = await place(buyer, (a, 2), (b, 3))
    order = data["order"]
    assert [] == data["errors"]
    assert ("PENDING", 3750, "USD", None, False) == (order["status"], order["totalCents"], order["currency"],
                                                    order["cancelReason"], order["needsRefund"])
    assert {(a["id"], 2, 1500), (b["id"], 3, 250)} == {
        (line["product"]["id"], line["quantity"], line["unitPriceCents"]) for line in order["lines"]}
    created, expires = datetime.fromisoformat(order["createdAt"]), datetime.fromisoformat(order["expiresAt"])
    assert timedelta(seconds=900) == expires - created
    assert (8, 2) == (await available(api, a), await available(api, b))
    assert order == (await buyer(READ, id=order["id"]))["order"]
    await wait_persisted([order["id"]])
    stock = "SELECT stock FROM product_stock WHERE product_id = $1"
    assert [8, 2] == [await pg.fetchval(stock, int(p["id"])) for p in (a, b)]
    # The id sorts by creation time (its first 48 bits are the milliseconds) and carries the buyer's
    # bucket, so the order's Redis keys share the buyer's slot (db.buckets).
    customer_id = await pg.fetchval("SELECT customer_id FROM orders WHERE id = $1::uuid", order["id"])
    assert buckets.of_customer(customer_id) == buckets.of_order(order["id"])
    assert abs((uuid.UUID(order["id"]).int >> 80) - created.timestamp() * 1000) < 1000


async def test_all_lines_or_none(buyer: Api, api: Api, make_product) -> None:
    """When one line cannot be had, nothing is reserved and the error names that line."""
    plenty = await make_product(stock=10)
    scarce = await make_product(stock=2)
    data = await place(buyer, (plenty, 5), (scarce, 3))
    assert (None, [("OUT_OF_STOCK", scarce["id"], 2, None)]) == (
        data["order"], [(e["code"], e["productId"], e["available"], e["remainingAllowance"]) for e in data["errors"]])
    assert (10, 2) == (await available(api, plenty), await available(api, scarce))


async def test_purchase_limit_spans_orders_and_cancel_gives_it_back(buyer: Api, make_product) -> None:
    """maxPerCustomer counts every order not cancelled, the error says what is left; cancelling returns it."""
    product = await make_product(stock=50, max_per_customer=3)
    first = await place(buyer, (product, 2))
    over = await place(buyer, (product, 2))
    assert [("PURCHASE_LIMIT_EXCEEDED", product["id"], 1, 1)] == [
        (e["code"], e["productId"], e["available"], e["remainingAllowance"]) for e in over["errors"]]
    cancelled = (await buyer(CANCEL, id=first["order"]["id"]))["cancelOrder"]
    assert [] == cancelled["errors"]
    again = await place(buyer, (product, 3))
    assert ([], "PENDING") == (again["errors"], again["order"]["status"])


async def test_same_key_returns_the_same_order_and_reserves_once(buyer: Api, api: Api, make_product) -> None:
    """Replaying an idempotency key gives the first order back; other lines with it are refused."""
    product = await make_product(stock=10)
    first = await place(buyer, (product, 2), key="replay-me")
    second = await place(buyer, (product, 2), key="replay-me")
    different = await place(buyer, (product, 3), key="replay-me")
    assert first["order"]["id"] == second["order"]["id"]
    assert ["IDEMPOTENCY_KEY_REUSED"] == [e["code"] for e in different["errors"]]
    assert 8 == await available(api, product)


async def test_twenty_concurrent_replays_make_one_order(buyer: Api, api: Api, make_product) -> None:
    """Twenty requests at once with one key: one order, reserved once."""
    product = await make_product(stock=100)
    results = await asyncio.gather(*[place(buyer, (product, 1), key="burst-key") for _ in range(20)])
    assert {results[0]["order"]["id"]} == {r["order"]["id"] for r in results}
    assert 99 == await available(api, product)


async def test_200_concurrent_buyers_for_20_units_never_oversell(api: Api, make_product, pg, wait_persisted,
                                                                 redis) -> None:
    """Exactly 20 of 200 concurrent one-unit orders succeed; PostgreSQL ends with stock 0 and 20 orders."""
    product = await make_product(stock=20)
    buyers = [await api.register(f"{unique('crowd')}@example.com") for _ in range(20)]
    results = await asyncio.gather(*[place(buyers[i % 20], (product, 1)) for i in range(200)])
    accepted = [r["order"]["id"] for r in results if r["order"]]
    refused = {e["code"] for r in results for e in r["errors"]}
    assert (20, {"OUT_OF_STOCK"}) == (len(accepted), refused)
    assert 0 == await available(api, product)
    await wait_persisted(accepted)
    assert 0 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))
    assert 20 == await pg.fetchval("SELECT sum(quantity) FROM order_items WHERE product_id = $1", int(product["id"]))
    assert "0" == await redis.get(keys.stock_held(product["id"]))


@pytest.mark.parametrize(("bad_lines", "field"), [
    ([], "lines"),
    ([{"productId": "1", "quantity": 0}], "lines[0].quantity"),
    ([{"productId": "1", "quantity": 101}], "lines[0].quantity"),
    ([{"productId": "x", "quantity": 1}], "lines[0].productId"),
    ([{"productId": str(i), "quantity": 1} for i in range(1, 52)], "lines"),
])
async def test_malformed_orders_are_invalid_input(buyer: Api, bad_lines, field) -> None:
    """Bad lines are INVALID_INPUT naming the field, and nothing is reserved."""
    data = (await buyer(PLACE, l=bad_lines, k=unique("k")))["placeOrder"]
    assert (None, [("INVALID_INPUT", field)]) == (data["order"], [(e["code"], e["field"]) for e in data["errors"]])


async def test_bad_idempotency_key_and_unknown_product(buyer: Api, make_product) -> None:
    """A malformed idempotency key is INVALID_INPUT; a product that does not exist is PRODUCT_NOT_FOUND."""
    product = await make_product()
    bad_key = (await buyer(PLACE, l=lines((product, 1)), k="has spaces"))["placeOrder"]
    unknown = (await buyer(PLACE, l=[{"productId": "987654321", "quantity": 1}], k=unique("k")))["placeOrder"]
    assert (["INVALID_INPUT"], ["PRODUCT_NOT_FOUND"]) == (
        [e["code"] for e in bad_key["errors"]], [e["code"] for e in unknown["errors"]])


async def test_duplicate_lines_are_combined(buyer: Api, api: Api, make_product) -> None:
    """Two lines of the same product count as one line of their sum."""
    product = await make_product(stock=4)
    data = await place(buyer, (product, 2), (product, 3))
    assert [("OUT_OF_STOCK", 4)] == [(e["code"], e["available"]) for e in data["errors"]]
    ok = await place(buyer, (product, 1), (product, 3))
    assert [(product["id"], 4)] == [(line["product"]["id"], line["quantity"]) for line in ok["order"]["lines"]]


ADD = "mutation($p: ID!, $q: Int!) { cartAddLine(productId: $p, quantity: $q) { errors { code } } }"


async def test_checkout_orders_the_cart_and_empties_it(buyer: Api, api: Api, make_product) -> None:
    """checkout turns the cart into a PENDING order and leaves the cart empty; a replay returns that order."""
    a, b = await make_product(stock=5), await make_product(stock=5)
    await buyer(ADD, p=a["id"], q=2)
    await buyer(ADD, p=b["id"], q=1)
    data = (await buyer(CHECKOUT, k="checkout-1"))["checkout"]
    assert ([], "PENDING") == (data["errors"], data["order"]["status"])
    assert {a["id"]: 2, b["id"]: 1} == {line["product"]["id"]: line["quantity"] for line in data["order"]["lines"]}
    assert {"cart": {"totalQuantity": 0}} == await buyer("{ cart { totalQuantity } }")
    replay = (await buyer(CHECKOUT, k="checkout-1"))["checkout"]
    assert data["order"]["id"] == replay["order"]["id"]
    assert (3, 4) == (await available(api, a), await available(api, b))


async def test_checkout_of_an_empty_cart_is_refused(buyer: Api) -> None:
    """An empty cart is EMPTY_CART."""
    data = (await buyer(CHECKOUT, k=unique("k")))["checkout"]
    assert (None, ["EMPTY_CART"]) == (data["order"], [e["code"] for e in data["errors"]])


async def test_checkout_that_cannot_be_had_keeps_the_cart(buyer: Api, make_product) -> None:
    """When a line is out of stock, checkout fails and the cart stays as it was."""
    product = await make_product(stock=1)
    await buyer(ADD, p=product["id"], q=2)
    data = (await buyer(CHECKOUT, k=unique("k")))["checkout"]
    assert [("OUT_OF_STOCK", 1)] == [(e["code"], e["available"]) for e in data["errors"]]
    assert {"cart": {"totalQuantity": 2}} == await buyer("{ cart { totalQuantity } }")


async def test_cancel_releases_stock_once_and_only_while_pending(buyer: Api, api: Api, make_product) -> None:
    """The owner cancels a PENDING order (even before it is persisted); a second cancel is refused."""
    product = await make_product(stock=5)
    order = (await place(buyer, (product, 3)))["order"]
    first = (await buyer(CANCEL, id=order["id"]))["cancelOrder"]
    second = (await buyer(CANCEL, id=order["id"]))["cancelOrder"]
    assert ("CANCELLED", "CUSTOMER") == (first["order"]["status"], first["order"]["cancelReason"])
    assert first["order"]["cancelledAt"] is not None
    assert ["ORDER_NOT_CANCELLABLE"] == [e["code"] for e in second["errors"]]
    assert 5 == await available(api, product)


async def test_orders_are_private_to_their_owner(buyer: Api, api: Api, make_product, staff: Api) -> None:
    """Another customer reads null and cannot cancel; staff can read it."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    other = await api.register(f"{unique('other')}@example.com")
    assert {"order": None} == await other(READ, id=order["id"])
    assert {"order": None} == await api(READ, id=order["id"])
    refused = (await other(CANCEL, id=order["id"]))["cancelOrder"]
    assert ["ORDER_NOT_FOUND"] == [e["code"] for e in refused["errors"]]
    assert order["id"] == (await staff(READ, id=order["id"]))["order"]["id"]
    assert {"order": None} == await buyer(READ, id="not-a-uuid")


async def test_orders_list_newest_first_with_pages(buyer: Api, make_product, wait_persisted) -> None:
    """`orders` lists the caller's orders newest first, persisted or not, page by page."""
    product = await make_product(stock=50)
    made = [(await place(buyer, (product, 1)))["order"]["id"] for _ in range(3)]
    await wait_persisted(made[:2])
    made.append((await place(buyer, (product, 1)))["order"]["id"])
    query = ("query($a: String) { orders(first: 3, after: $a) { edges { cursor node { id status } } "
             "pageInfo { endCursor hasNextPage } } }")
    page1 = (await buyer(query))["orders"]
    page2 = (await buyer(query, a=page1["pageInfo"]["endCursor"]))["orders"]
    seen = [e["node"]["id"] for e in page1["edges"] + page2["edges"]]
    assert (list(reversed(made)), True, False) == (seen, page1["pageInfo"]["hasNextPage"],
                                                   page2["pageInfo"]["hasNextPage"])
