"""Input PostgreSQL or GraphQL's Int cannot hold gets INVALID_INPUT (or nothing found) and changes nothing.

Each class of input an outside fuzzer turned into HTTP 500 or "Unexpected error.": text with NUL
characters or unpaired surrogates, ids and cursors Python accepts but PostgreSQL refuses, and
amounts beyond 32 bits. Bodies are sent as JSON with \\u escapes, as a client library would.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import PLACE, READ, available, lines
from tests.stack import Stack

NUL, SURROGATE = "a\x00b", "a\ud800b"
MAX_INT = 2**31 - 1


async def raw(stack: Stack, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
    """POST exactly what a JSON encoder makes of these strings (\\u0000, \\ud800), and insist on a clean answer."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables}).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(stack.graphql_url, content=body, headers=headers)
    assert response.status_code < 500, response.text
    answer = response.json()
    assert "Unexpected error." not in json.dumps(answer), answer
    return answer


@pytest.fixture
async def buyer(api: Api) -> Api:
    return await api.register(f"{unique('bad')}@example.com")


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_unstorable_text_in_accounts_is_invalid_input(stack: Stack, bad: str) -> None:
    """register and login with a NUL or an unpaired surrogate in email or password: INVALID_INPUT, no account."""
    reg = "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { token errors { code field } } }"
    log = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token errors { code field } } }"
    for query, email, password, field in [
        (reg, f"{bad}@example.com", "long enough pw", "email"),
        (reg, f"{unique('p')}@example.com", f"long enough {bad}", "password"),
        (log, f"{bad}@example.com", "long enough pw", "email"),
        (log, f"{unique('p')}@example.com", f"pw {bad}", "password"),
    ]:
        payload = next(iter((await raw(stack, query, e=email, p=password))["data"].values()))
        assert (None, [{"code": "INVALID_INPUT", "field": field}]) == (payload["token"], payload["errors"])


@pytest.mark.parametrize("bad", [NUL, SURROGATE])
async def test_unstorable_text_in_catalogue_and_search_is_invalid_input(stack: Stack, staff: Api, bad: str) -> None:
    """productCreate with bad name, description, sku or imageUrl, and a bad search: INVALID_INPUT naming the field."""
    create = "mutation($i: ProductInput!) { productCreate(input: $i) { product { id } errors { code field } } }"
    good = {"sku": unique("SKU-"), "name": "ok", "priceCents": 100, "stock": 1}
    for field, value in [("name", bad), ("description", bad), ("sku", bad), ("imageUrl", f"https://x/{bad}")]:
        data = await raw(stack, create, staff.token, i={**good, field: value})
        assert {"product": None, "errors": [{"code": "INVALID_INPUT", "field": field}]} == data["data"]["productCreate"]
    search = await raw(stack, "query($s: String) { products(search: $s) { edges { cursor } } }", s=bad)
    assert None is search["data"]
    assert ["search must not contain NUL characters or unpaired surrogates"] == [e["message"] for e in search["errors"]]


@pytest.mark.parametrize("product_id", ["1_0", " 7 ", "\u0661\u0662", "99999999999999999999", "0", "-3", NUL])
async def test_product_ids_only_in_the_form_postgresql_stores(stack: Stack, buyer: Api, product_id: str) -> None:
    """Ids int() would take (underscores, spaces, other scripts' digits) or out of range: INVALID_INPUT or null."""
    added = await raw(stack, "mutation($p: ID!) { cartAddLine(productId: $p, quantity: 1) { errors { code } } }",
                      buyer.token, p=product_id)
    assert [{"code": "INVALID_INPUT"}] == added["data"]["cartAddLine"]["errors"]
    assert {"product": None} == (await raw(stack, "query($p: ID!) { product(id: $p) { id } }", p=product_id))["data"]


async def test_order_ids_in_spellings_postgresql_refuses_find_nothing(stack: Stack, buyer: Api, make_product) -> None:
    """Braces, urn:uuid:, no hyphens or a NUL find nothing; the canonical spelling (any case) finds the order."""
    product = await make_product(stock=5)
    order_id = (await buyer(PLACE, l=lines((product, 1)), k=unique("k")))["placeOrder"]["order"]["id"]
    hexed = order_id.replace("-", "")
    for spelling in (f"{{{order_id}}}", f"urn:uuid:{order_id}", hexed, order_id + NUL, SURROGATE):
        assert {"order": None} == (await raw(stack, READ, buyer.token, id=spelling))["data"], spelling
        cancel = "mutation($id: ID!) { cancelOrder(id: $id) { order { id } errors { code } } }"
        assert [{"code": "ORDER_NOT_FOUND"}] == (await raw(stack, cancel, buyer.token, id=spelling))["data"][
            "cancelOrder"]["errors"]
    assert order_id == (await raw(stack, READ, buyer.token, id=order_id.upper()))["data"]["order"]["id"]


@pytest.mark.parametrize("key", ["order:not-a-uuid", "order:{00000000-0000-0000-0000-000000000000}",
                                 "product:99999999999999999999", "product:abc", "product:1_0", "x"])
async def test_hand_made_cursors_are_invalid_input(stack: Stack, buyer: Api, key: str) -> None:
    """A cursor a client built itself (bad kind, non-numeric, out of range, odd uuid): INVALID_INPUT, not a 500."""
    cursor = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    field = "orders" if key.startswith("order") else "products"
    answer = await raw(stack, f'query($a: String) {{ {field}(after: $a) {{ edges {{ cursor }} }} }}', buyer.token,
                       a=cursor)
    assert None is answer["data"] and ["not a valid cursor"] == [e["message"] for e in answer["errors"]]


async def test_an_order_total_beyond_an_int_is_refused_before_any_stock_moves(buyer: Api, api: Api,
                                                                               make_product) -> None:
    """Two lines of 100 units at the highest price would total over 2^31 cents: INVALID_INPUT, nothing reserved."""
    price = MAX_INT // 100
    a, b = await make_product(stock=200, price_cents=price), await make_product(stock=200, price_cents=price)
    data = (await buyer(PLACE, l=lines((a, 100), (b, 100)), k=unique("k")))["placeOrder"]
    assert (None, ["INVALID_INPUT"]) == (data["order"], [e["code"] for e in data["errors"]])
    assert (200, 200) == (await available(api, a), await available(api, b))
    one_line = (await buyer(PLACE, l=lines((a, 100)), k=unique("k")))["placeOrder"]
    assert price * 100 == one_line["order"]["totalCents"]
    listed = await buyer("{ orders(first: 5) { edges { node { totalCents } } } }")
    assert price * 100 in [e["node"]["totalCents"] for e in listed["orders"]["edges"]]


async def test_a_cart_subtotal_beyond_an_int_is_refused(buyer: Api, make_product) -> None:
    """Adding a line that would push the subtotal over 2^31 cents is INVALID_INPUT; the cart stays readable."""
    price = MAX_INT // 100
    a, b = await make_product(price_cents=price), await make_product(price_cents=price)
    add = "mutation($p: ID!, $q: Int!) { cartAddLine(productId: $p, quantity: $q) { errors { code field } } }"
    assert [] == (await buyer(add, p=a["id"], q=100))["cartAddLine"]["errors"]
    assert [{"code": "INVALID_INPUT", "field": "quantity"}] == (await buyer(add, p=b["id"], q=1))["cartAddLine"][
        "errors"]
    assert price * 100 == (await buyer("{ cart { subtotalCents } }"))["cart"]["subtotalCents"]


async def test_stock_cannot_be_adjusted_beyond_a_32_bit_column(staff: Api, make_product, api: Api) -> None:
    """stockAdjust past 2^31 - 1 units is INVALID_INPUT and leaves stock as it was."""
    product = await make_product(stock=10_000_000)
    adjust = "mutation($p: ID!, $d: Int!) { stockAdjust(productId: $p, delta: $d) { errors { code field } } }"
    for _ in range(213):  # 10M + 213 x 10M is the last step that fits
        assert [] == (await staff(adjust, p=product["id"], d=10_000_000))["stockAdjust"]["errors"]
    assert [{"code": "INVALID_INPUT", "field": "delta"}] == (await staff(adjust, p=product["id"], d=10_000_000))[
        "stockAdjust"]["errors"]
    assert 2_140_000_000 == await available(api, product)
