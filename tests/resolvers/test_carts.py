"""Carts: every mutation, limits, guest and customer owners, merge on sign-in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api import Api

CART = (
    "cart { lines { product { id available } quantity lineTotalCents } "
    "totalQuantity subtotalCents currency updatedAt }"
)
ADD = (f"mutation($p: ID!, $q: Int!) {{ cartAddLine(productId: $p, quantity: $q) {{ {CART} "
       "errors { code field message } } }")
UPDATE = (f"mutation($p: ID!, $q: Int!) {{ cartUpdateLine(productId: $p, quantity: $q) {{ {CART} "
          "errors { code field message } } }")
REMOVE = f"mutation($p: ID!) {{ cartRemoveLine(productId: $p) {{ {CART} errors {{ code field }} }} }}"
CLEAR = f"mutation {{ cartClear {{ {CART} errors {{ code }} }} }}"
READ = f"{{ {CART} }}"
LOGIN = (
    "mutation($e: String!, $p: String!, $m: CartMergeStrategy) { login(email: $e, password: $p, cartMerge: $m) "
    "{ token cart { lines { product { id } quantity } totalQuantity } "
    "cartMerge { strategy guestLines linesAdded linesCombined linesCapped } errors { code } } }"
)
PASSWORD = "correct horse battery"


def quantities(cart: dict[str, Any]) -> dict[str, int]:
    return {line["product"]["id"]: line["quantity"] for line in cart["lines"]}


async def test_guest_cart_adds_up_and_totals(api: Api, make_product) -> None:
    """Adding to a line adds quantities; totals follow prices."""
    guest = await api.start_session()
    a = await make_product(price_cents=250)
    b = await make_product(price_cents=1000)
    await guest(ADD, p=a["id"], q=2)
    await guest(ADD, p=b["id"], q=1)
    data = (await guest(ADD, p=a["id"], q=3))["cartAddLine"]
    assert [] == data["errors"]
    cart = data["cart"]
    assert ({a["id"]: 5, b["id"]: 1}, 6, 2250, "USD") == (
        quantities(cart), cart["totalQuantity"], cart["subtotalCents"], cart["currency"])
    assert cart["updatedAt"] is not None
    assert cart == (await guest(READ))["cart"]


async def test_update_sets_and_zero_removes(api: Api, make_product) -> None:
    """cartUpdateLine sets a quantity; 0 removes the line; cartRemoveLine and cartClear empty it."""
    guest = await api.start_session()
    a, b = await make_product(), await make_product()
    await guest(ADD, p=a["id"], q=4)
    await guest(ADD, p=b["id"], q=4)
    set_ = (await guest(UPDATE, p=a["id"], q=7))["cartUpdateLine"]["cart"]
    zero = (await guest(UPDATE, p=a["id"], q=0))["cartUpdateLine"]["cart"]
    removed = (await guest(REMOVE, p=b["id"]))["cartRemoveLine"]["cart"]
    assert ({a["id"]: 7, b["id"]: 4}, {b["id"]: 4}, {}) == (
        quantities(set_), quantities(zero), quantities(removed))
    await guest(ADD, p=a["id"], q=1)
    cleared = (await guest(CLEAR))["cartClear"]["cart"]
    assert (0, []) == (cleared["totalQuantity"], cleared["lines"])


@pytest.mark.parametrize(("mutation", "quantity", "field"), [
    (ADD, 0, "quantity"), (ADD, 101, "quantity"), (ADD, -1, "quantity"),
    (UPDATE, -1, "quantity"), (UPDATE, 101, "quantity"),
])
async def test_quantities_out_of_range_are_invalid(api: Api, make_product, mutation, quantity, field) -> None:
    """Quantities outside 1..100 (0..100 for update) are INVALID_INPUT with field quantity."""
    guest = await api.start_session()
    product = await make_product()
    data = next(iter((await guest(mutation, p=product["id"], q=quantity)).values()))
    assert (None, [("INVALID_INPUT", field)]) == (data["cart"], [(e["code"], e["field"]) for e in data["errors"]])


async def test_a_line_never_exceeds_100_units(api: Api, make_product) -> None:
    """Adding past 100 units on one line is refused and the line keeps its quantity."""
    guest = await api.start_session()
    product = await make_product()
    await guest(ADD, p=product["id"], q=80)
    data = (await guest(ADD, p=product["id"], q=30))["cartAddLine"]
    assert ["INVALID_INPUT"] == [e["code"] for e in data["errors"]]
    assert {product["id"]: 80} == quantities((await guest(READ))["cart"])


async def test_unknown_products_are_not_found(api: Api) -> None:
    """Adding a product that does not exist is PRODUCT_NOT_FOUND; a malformed id is INVALID_INPUT."""
    guest = await api.start_session()
    missing = (await guest(ADD, p="987654321", q=1))["cartAddLine"]["errors"]
    malformed = (await guest(ADD, p="abc", q=1))["cartAddLine"]["errors"]
    assert (["PRODUCT_NOT_FOUND"], ["INVALID_INPUT"]) == ([e["code"] for e in missing],
                                                          [e["code"] for e in malformed])


async def test_cart_holds_at_most_50_lines(api: Api, make_product) -> None:
    """The 51st distinct product is refused; the 50 lines stay."""
    guest = await api.start_session()
    products = await asyncio.gather(*[make_product() for _ in range(51)])
    for product in products[:50]:
        assert [] == (await guest(ADD, p=product["id"], q=1))["cartAddLine"]["errors"]
    data = (await guest(ADD, p=products[50]["id"], q=1))["cartAddLine"]
    assert ["INVALID_INPUT"] == [e["code"] for e in data["errors"]]
    assert 50 == len((await guest(READ))["cart"]["lines"])


async def test_cart_shows_live_available_even_when_over_it(api: Api, make_product) -> None:
    """More than is available may sit in a cart; each line shows the live `available`."""
    guest = await api.start_session()
    product = await make_product(stock=3)
    data = (await guest(ADD, p=product["id"], q=5))["cartAddLine"]
    assert ([], 5, 3) == (data["errors"], data["cart"]["lines"][0]["quantity"],
                          data["cart"]["lines"][0]["product"]["available"])


async def test_cart_mutations_need_an_issued_session_or_a_token(api: Api, make_product) -> None:
    """Without identity, or with a session id the server never issued, cart mutations are refused."""
    product = await make_product()
    anonymous = (await api(ADD, p=product["id"], q=1))["cartAddLine"]["errors"]
    forged = (await api.as_(session_id="made-up-by-the-client")(ADD, p=product["id"], q=1))["cartAddLine"]
    stale = (await api.as_(token="revoked-or-never-issued")(ADD, p=product["id"], q=1))["cartAddLine"]
    assert [["NOT_AUTHENTICATED"]] * 3 == [
        [e["code"] for e in anonymous], [e["code"] for e in forged["errors"]], [e["code"] for e in stale["errors"]]
    ]
    assert {"cart": {"lines": [], "totalQuantity": 0}} == await api.as_(session_id="made-up")(
        "{ cart { lines { quantity } totalQuantity } }")


async def test_customer_cart_is_the_same_on_every_device(api: Api, email: str, make_product) -> None:
    """Two sign-ins of one customer see and change one cart."""
    phone = await api.register(email, PASSWORD)
    laptop = await api.login(email, PASSWORD)
    product = await make_product()
    await phone(ADD, p=product["id"], q=2)
    await laptop(ADD, p=product["id"], q=1)
    assert {product["id"]: 3} == quantities((await phone(READ))["cart"])


async def login(guest: Api, email: str, strategy: str | None = None) -> dict[str, Any]:
    variables: dict[str, Any] = {"e": email, "p": PASSWORD}
    if strategy:
        variables["m"] = strategy
    data = (await guest(LOGIN, **variables))["login"]
    assert [] == data["errors"]
    return data


async def customer_with_cart(api: Api, email: str, lines: dict[str, int]) -> Api:
    customer = await api.register(email, PASSWORD)
    for pid, qty in lines.items():
        await customer(ADD, p=pid, q=qty)
    return customer


async def test_merge_adds_and_combines_lines_with_a_cap(api: Api, email: str, make_product) -> None:
    """MERGE adds guest lines, sums overlapping ones and caps a line at 100, reporting each."""
    a, b, c = await make_product(), await make_product(), await make_product()
    await customer_with_cart(api, email, {a["id"]: 2, b["id"]: 90})
    guest = await api.start_session()
    for pid, qty in ((a["id"], 3), (b["id"], 20), (c["id"], 1)):
        await guest(ADD, p=pid, q=qty)
    data = await login(guest, email)
    assert {"strategy": "MERGE", "guestLines": 3, "linesAdded": 1, "linesCombined": 2,
            "linesCapped": [b["id"]]} == data["cartMerge"]
    assert {a["id"]: 5, b["id"]: 100, c["id"]: 1} == quantities(data["cart"])
    assert {"cart": {"lines": [], "totalQuantity": 0}} == await guest.as_(session_id=guest.session_id)(
        "{ cart { lines { quantity } totalQuantity } }")


async def test_keep_customer_cart_drops_the_guest_cart(api: Api, email: str, make_product) -> None:
    """KEEP_CUSTOMER_CART leaves the customer's cart as it was and empties the guest cart."""
    a, b = await make_product(), await make_product()
    await customer_with_cart(api, email, {a["id"]: 2})
    guest = await api.start_session()
    await guest(ADD, p=b["id"], q=1)
    data = await login(guest, email, "KEEP_CUSTOMER_CART")
    assert ({a["id"]: 2}, 1, 0) == (quantities(data["cart"]), data["cartMerge"]["guestLines"],
                                    data["cartMerge"]["linesAdded"])
    assert [] == (await guest.as_(session_id=guest.session_id)(READ))["cart"]["lines"]


async def test_replace_with_guest_cart_only_when_guest_cart_has_lines(api: Api, email: str, make_product) -> None:
    """REPLACE_WITH_GUEST_CART replaces a customer's cart by a non-empty guest cart, never by an empty one."""
    a, b = await make_product(), await make_product()
    await customer_with_cart(api, email, {a["id"]: 2})
    empty_guest = await api.start_session()
    kept = await login(empty_guest, email, "REPLACE_WITH_GUEST_CART")
    guest = await api.start_session()
    await guest(ADD, p=b["id"], q=4)
    replaced = await login(guest, email, "REPLACE_WITH_GUEST_CART")
    assert ({a["id"]: 2}, {b["id"]: 4}) == (quantities(kept["cart"]), quantities(replaced["cart"]))


async def test_register_keeps_the_guest_cart(api: Api, email: str, make_product) -> None:
    """Signing up with a guest cart gives the new account that cart."""
    product = await make_product()
    guest = await api.start_session()
    await guest(ADD, p=product["id"], q=2)
    data = (await guest("mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
                        "{ cart { lines { product { id } quantity } } cartMerge { linesAdded } } }",
                        e=email, p=PASSWORD))["register"]
    assert ({product["id"]: 2}, 1) == (quantities(data["cart"]), data["cartMerge"]["linesAdded"])


async def test_two_concurrent_logins_lose_no_line(api: Api, email: str, make_product) -> None:
    """Two devices signing in at once, each with its own guest cart, end with both carts merged."""
    a, b, shared = await make_product(), await make_product(), await make_product()
    await customer_with_cart(api, email, {})
    first, second = await api.start_session(), await api.start_session()
    await first(ADD, p=a["id"], q=1)
    await first(ADD, p=shared["id"], q=2)
    await second(ADD, p=b["id"], q=3)
    await second(ADD, p=shared["id"], q=5)
    await asyncio.gather(login(first, email), login(second, email))
    customer = await api.login(email, PASSWORD)
    assert {a["id"]: 1, b["id"]: 3, shared["id"]: 7} == quantities((await customer(READ))["cart"])


async def test_the_same_guest_cart_is_merged_once(api: Api, email: str, make_product) -> None:
    """The same guest session signing in twice at once does not double its lines."""
    product = await make_product()
    await customer_with_cart(api, email, {})
    guest = await api.start_session()
    await guest(ADD, p=product["id"], q=2)
    await asyncio.gather(login(guest, email), login(guest, email))
    customer = await api.login(email, PASSWORD)
    assert {product["id"]: 2} == quantities((await customer(READ))["cart"])
