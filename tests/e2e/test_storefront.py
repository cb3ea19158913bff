"""The demo storefront in a real browser against the live API server and worker.

Skipped, with the reason, where Playwright for Python or a Chromium executable is missing.
Screenshots of each step go to tests/output/e2e/ (under RUSHCART_TEST_OUTPUT when set).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.e2e.browser import missing_reason

_missing = missing_reason()
if _missing:
    pytest.skip(f"browser tests skipped: {_missing}", allow_module_level=True)

from playwright.async_api import Browser, WebSocketRoute, expect  # noqa: E402

from tests.api import Api  # noqa: E402
from tests.e2e.storefront import PASSWORD, Storefront, create_product, fresh_storefront  # noqa: E402
from tests.stack import OUTPUT, Stack  # noqa: E402

SCREENSHOTS = OUTPUT / "e2e"
# Live updates arrive at once over the WebSocket; the page's polling fallback takes a few seconds.
LIVE_TIMEOUT_MS = 20_000

expect.set_options(timeout=10_000)


@pytest.fixture
async def shop(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[Storefront]:
    """A fresh browser profile (empty localStorage and cookies) on the storefront."""
    test_name, _, param = request.node.name.removeprefix("test_").partition("[")
    name = "-".join([*test_name.split("_")[:4], *([param.rstrip("]")] if param else [])])
    async with fresh_storefront(browser, stack.base_url, SCREENSHOTS, name) as store:
        yield store


async def refuse_websocket(ws: WebSocketRoute) -> None:
    await ws.close(code=1011, reason="refused by the test")


async def _customer_api(api: Api, store: Storefront) -> Api:
    token = await store.stored("rushcart.token")
    assert token, "the page keeps the bearer token in localStorage"
    return api.as_(token=token)


async def test_guest_cart_follows_the_shopper_into_a_new_account_and_payment_shows_live(
    shop: Storefront, staff: Api, api: Api, email: str,
) -> None:
    """Browse, fill a guest cart, sign up (cart merged), check out, pay: the badge turns PAID without reload."""
    marker = f"e2e{uuid.uuid4().hex[:10]}"
    sneakers = await create_product(staff, marker, "Aero Trail sneakers", price_cents=12900, stock=40,
                                    description="Limited colourway, numbered box.", max_per_customer=2)
    mug = await create_product(staff, marker, "Enamel camp mug", price_cents=1900, stock=8,
                               description="Hand-dipped enamel, 350 ml.")

    await shop.open(search=marker)
    await expect(shop.cards).to_have_count(2)
    await expect(shop.card(sneakers).get_by_role("heading")).to_have_text("Aero Trail sneakers")
    await expect(shop.card(sneakers)).to_contain_text("$129.00")
    await expect(shop.card(sneakers)).to_contain_text("Limit 2 per customer")
    await expect(shop.card(mug).locator(".stock-badge")).to_have_text("Only 8 left")
    await expect(shop.cart_count).to_have_text("0")
    await shop.screenshot("browse")

    await shop.add_to_cart(sneakers, expect_count=1)
    await shop.add_to_cart(mug, expect_count=2)
    await shop.add_to_cart(mug, expect_count=3)
    assert await shop.stored("rushcart.sessionId"), "a guest session is started and kept"

    # The guest cart survives a reload.
    await shop.page.reload()
    await expect(shop.page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(shop.cart_count).to_have_text("3")

    # The drawer is a dialog that Escape closes; checking out as a guest asks to sign in first,
    # and signing up takes the cart along.
    drawer = await shop.open_cart()
    await shop.page.keyboard.press("Escape")
    await expect(drawer).to_be_hidden()
    drawer = await shop.open_cart()
    await drawer.get_by_role("button", name="Sign in to check out").click()
    await shop.sign_up_or_in(email, register=True)
    await expect(shop.page.locator(".toast").last).to_contain_text("2 lines added")

    drawer = shop.drawer  # reopened after signing in, to finish checking out
    await expect(drawer).to_be_visible()
    await expect(drawer.locator("#cart-notice")).to_have_text("Your guest cart was merged: 2 lines added.")
    await expect(drawer.locator(".cart-line")).to_have_count(2)
    await expect(drawer.get_by_label("Quantity of Enamel camp mug", exact=True)).to_have_value("2")
    await expect(drawer.locator("#cart-subtotal")).to_have_text("$167.00")
    await shop.screenshot("merged-cart")

    await drawer.get_by_role("button", name="Decrease quantity of Enamel camp mug").click()
    await expect(drawer.get_by_label("Quantity of Enamel camp mug", exact=True)).to_have_value("1")
    await expect(drawer.locator("#cart-subtotal")).to_have_text("$148.00")

    await drawer.get_by_role("button", name="Check out").click()
    order = shop.order_dialog
    await expect(order).to_be_visible()
    await expect(shop.order_badge).to_have_attribute("data-status", "PENDING")
    await expect(order.locator(".order-line")).to_have_count(2)
    await expect(order.locator("#order-total")).to_have_text("$148.00")
    await expect(order.get_by_role("timer")).to_contain_text("held for")
    await expect(shop.cart_count).to_have_text("0")
    await expect(order).to_have_attribute("data-feed", "live")  # orderStatus subscription, signed in
    await shop.screenshot("order-pending")

    # The stock others see went down (live, or by the page's polling fallback).
    await expect(shop.card(sneakers).locator(".stock")).to_have_text("39 in stock", timeout=LIVE_TIMEOUT_MS)
    await expect(shop.card(mug).locator(".stock-badge")).to_have_text("Only 7 left", timeout=LIVE_TIMEOUT_MS)

    await order.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await expect(shop.order_badge).to_have_attribute("data-status", "PAID", timeout=LIVE_TIMEOUT_MS)
    await expect(shop.order_badge).to_have_text("Paid")
    await expect(order.get_by_role("button", name=re.compile(r"^Pay "))).to_be_hidden()
    await shop.screenshot("order-paid")

    order_ref = (await order.get_by_role("heading", level=2).text_content() or "").removeprefix("Order #")
    await shop.page.keyboard.press("Escape")
    await expect(order).to_be_hidden()
    orders = shop.page.get_by_role("region", name="My orders")
    await expect(orders).to_be_visible()
    row = orders.locator(".order-row").filter(has_text=f"Order #{order_ref}")
    await expect(row.locator(".status-badge")).to_have_attribute("data-status", "PAID")
    await row.scroll_into_view_if_needed()
    await shop.screenshot("my-orders")

    customer = await _customer_api(api, shop)
    data = await customer("query { orders(first: 1) { edges { node { id status totalCents } } } }")
    (latest,) = [edge["node"] for edge in data["orders"]["edges"]]
    assert (latest["status"], latest["totalCents"]) == ("PAID", 14800)
    assert latest["id"].replace("-", "").upper().endswith(order_ref)
    assert shop.errors == []


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_last_unit_bought_by_someone_else_shows_sold_out_and_checkout_says_so(
    shop: Storefront, staff: Api, api: Api, email: str, transport: str,
) -> None:
    """Another client buys the last unit: the card turns "Sold out" (by subscription, or by polling when
    the WebSocket is refused), and checkout names the product."""
    marker = f"e2e{uuid.uuid4().hex[:10]}"
    deck = await create_product(staff, marker, "Maple skate deck", price_cents=6900, stock=1,
                                description="Seven-ply, artist series.")
    if transport == "polling":
        await shop.page.route_web_socket(re.compile(r"/graphql$"), refuse_websocket)

    await shop.open(search=marker)
    await expect(shop.cards).to_have_count(1)
    mode = "live" if transport == "websocket" else "polling"
    await expect(shop.page.locator("#live-indicator")).to_have_attribute("data-mode", mode)
    await expect(shop.card(deck).locator(".stock-badge")).to_have_text("Only 1 left")
    await shop.add_to_cart(deck, expect_count=1)
    await expect(shop.add_button(deck)).to_be_enabled()

    rival = await api.register(f"rival-{email}")
    bought = await rival(
        "mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
        "{ order { status } errors { code } } }",
        l=[{"productId": deck["id"], "quantity": 1}], k=str(uuid.uuid4()),
    )
    assert bought["placeOrder"] == {"order": {"status": "PENDING"}, "errors": []}

    await expect(shop.card(deck).locator(".stock-badge")).to_have_text("Sold out", timeout=LIVE_TIMEOUT_MS)
    await expect(shop.add_button(deck)).to_be_disabled()
    await expect(shop.add_button(deck)).to_have_text(re.compile(r"^Sold out"))
    await shop.screenshot("sold-out")

    drawer = await shop.open_cart()
    await expect(drawer.locator(".cart-line-warning")).to_have_text("Sold out: remove it to check out")
    await drawer.get_by_role("button", name="Sign in to check out").click()
    await shop.sign_up_or_in(email, register=True)
    await expect(drawer).to_be_visible()
    await drawer.get_by_role("button", name="Check out").click()
    await expect(drawer.locator("#cart-error")).to_contain_text("Maple skate deck is sold out.")
    await shop.screenshot("checkout-refused")
    assert shop.errors == []


async def test_returning_customer_signs_in_combines_carts_and_a_failed_payment_cancels_the_order(
    shop: Storefront, staff: Api, api: Api, email: str,
) -> None:
    """Sign in merges the guest cart into the saved one, checkout explains the purchase limit, and
    "Fail payment" cancels the order live and puts the stock back."""
    marker = f"e2e{uuid.uuid4().hex[:10]}"
    lamp = await create_product(staff, marker, "Arc desk lamp", price_cents=7400, stock=5,
                                description="Warm dimmable LED.", max_per_customer=1)
    bottle = await create_product(staff, marker, "Steel bottle 750 ml", price_cents=2900, stock=50,
                                  description="Keeps cold for 24 h.")
    customer = await api.register(email, PASSWORD)
    saved = await customer(
        "mutation($p: ID!) { cartAddLine(productId: $p, quantity: 1) { errors { code } } }", p=lamp["id"],
    )
    assert saved["cartAddLine"]["errors"] == []

    await shop.open(search=marker)
    await shop.add_to_cart(lamp, expect_count=1)
    await shop.add_to_cart(bottle, expect_count=2)
    await shop.sign_up_or_in(email, register=False)
    await expect(shop.page.locator(".toast").last).to_contain_text("1 line added, 1 combined")
    await expect(shop.cart_count).to_have_text("3")

    drawer = await shop.open_cart()
    await expect(drawer.get_by_label("Quantity of Arc desk lamp", exact=True)).to_have_value("2")
    await drawer.get_by_role("button", name="Remove Steel bottle 750 ml").click()
    await expect(drawer.locator(".cart-line")).to_have_count(1)
    await drawer.get_by_role("button", name="Check out").click()
    await expect(drawer.locator("#cart-error")).to_contain_text("You can buy 1 more of Arc desk lamp.")
    await shop.screenshot("purchase-limit")

    quantity = drawer.get_by_label("Quantity of Arc desk lamp", exact=True)
    await quantity.fill("1")
    await quantity.press("Enter")
    await expect(drawer.locator("#cart-subtotal")).to_have_text("$74.00")
    await drawer.get_by_role("button", name="Check out").click()
    await expect(shop.order_badge).to_have_attribute("data-status", "PENDING")
    await expect(shop.card(lamp).locator(".stock-badge")).to_have_text("Only 4 left", timeout=LIVE_TIMEOUT_MS)

    await shop.order_dialog.get_by_role("button", name="Fail payment").click()
    await expect(shop.order_badge).to_have_attribute("data-status", "CANCELLED", timeout=LIVE_TIMEOUT_MS)
    await expect(shop.order_badge).to_have_text("Cancelled: payment failed")
    await expect(shop.card(lamp).locator(".stock-badge")).to_have_text("Only 5 left", timeout=LIVE_TIMEOUT_MS)
    await shop.screenshot("payment-failed")

    await shop.page.keyboard.press("Escape")
    await shop.page.get_by_role("button", name="Sign out").click()
    await expect(shop.page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    await expect(shop.page.get_by_role("region", name="My orders")).to_be_hidden()
    assert await shop.stored("rushcart.token") is None
    assert shop.errors == []
