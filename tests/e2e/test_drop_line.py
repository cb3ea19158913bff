"""A drop's waiting line in the demo storefront, in a real browser against the live API and worker.

Staff put a product into a drop through the API; the page joins its line as a guest, follows its
place live, gets its turn, signs in and buys with the pass. Shoppers driven through the API stand
ahead of the page, so the test decides when the line moves. Skipped, with the reason, where
Playwright for Python or a Chromium executable is missing; screenshots go to tests/output/e2e/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.browser import missing_reason

_missing = missing_reason()
if _missing:
    pytest.skip(f"browser tests skipped: {_missing}", allow_module_level=True)

from playwright.async_api import Browser, Locator, expect  # noqa: E402

from tests.api import Api  # noqa: E402
from tests.e2e.storefront import Storefront, create_product, fresh_storefront  # noqa: E402
from tests.resolvers.test_drops import (  # noqa: E402
    END,
    buy,
    create_drop,
    customers,
    join,
    line,
    wait_started,
    wait_status,
)
from tests.stack import OUTPUT, Stack, eventually  # noqa: E402

SCREENSHOTS = OUTPUT / "e2e"
# The line tells its listeners about once a second; a loaded machine may take a few more.
LINE_TIMEOUT_MS = 20_000

expect.set_options(timeout=10_000)


@pytest.fixture
async def shop(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[Storefront]:
    name = "drop-" + "-".join(request.node.name.removeprefix("test_").split("_")[:4])
    async with fresh_storefront(browser, stack.base_url, SCREENSHOTS, name) as store:
        yield store


def panel(shop: Storefront, product: dict[str, Any]) -> Locator:
    return shop.card(product).locator(".drop-panel")


def line_button(shop: Storefront, product: dict[str, Any]) -> Locator:
    return shop.card(product).locator(".add-button")


def button_label(shop: Storefront, product: dict[str, Any]) -> Locator:
    """The button's visible words (its accessible name also names the product)."""
    return line_button(shop, product).locator(".label")


async def admitted_one(shoppers: list[Api], drop: dict[str, Any]) -> Api:
    """The API shopper whose turn it is (the line admits one at a time)."""
    async def holder() -> Api | None:
        for shopper in shoppers:
            if (await line(shopper, drop))["status"] == "ADMITTED":
                return shopper
        return None

    found: Api = await eventually(holder, timeout=20, message="a pass for a shopper ahead of the page")
    return found


async def test_a_guest_joins_the_line_follows_it_live_and_buys_on_their_turn(
    shop: Storefront, staff: Api, api: Api, email: str,
) -> None:
    """Join, "1 ahead of you" falling live to "It's your turn" with a countdown, sign in, buy: the order shows."""
    marker = f"drop{uuid.uuid4().hex[:10]}"
    product = await create_product(staff, marker, "Numbered print", price_cents=4500, stock=5,
                                   description="Signed, 1 of 5.", max_per_customer=1)
    drop = await create_drop(staff, [product], starts_in=2, maxActive=1, passTtlSeconds=120)
    ahead = await customers(api, 2)
    for shopper in ahead:
        await join(shopper, drop)

    await shop.open(search=marker)
    await expect(panel(shop, product)).to_contain_text("Limited drop")
    await expect(button_label(shop, product)).to_have_text("Join the line")
    await shop.screenshot("join")
    await wait_started(drop)

    await line_button(shop, product).click()
    # One API shopper holds the pass, the other waits before the page: one ahead of it.
    # maxActive 1 and passes of two minutes: about two passes' time before the page's turn.
    await expect(panel(shop, product)).to_contain_text(
        re.compile(r"You're in line — 1 ahead of you, about \d+ minutes"), timeout=LINE_TIMEOUT_MS)
    await expect(line_button(shop, product)).to_be_disabled()
    await shop.screenshot("in-line")

    first = await admitted_one(ahead, drop)
    assert [] == (await buy(first, product))["errors"]
    await expect(panel(shop, product)).to_contain_text("You're in line — you're next", timeout=LINE_TIMEOUT_MS)
    second = next(s for s in ahead if s is not first)
    await wait_status(second, drop, "ADMITTED")
    assert [] == (await buy(second, product))["errors"]

    await expect(panel(shop, product)).to_contain_text("It's your turn!", timeout=LINE_TIMEOUT_MS)
    await expect(panel(shop, product)).to_contain_text(re.compile(r"Buy within [12]:\d\d"))
    await expect(button_label(shop, product)).to_have_text("Sign in to buy")
    await shop.screenshot("your-turn")

    await line_button(shop, product).click()
    await shop.sign_up_or_in(email, register=True)
    await expect(button_label(shop, product)).to_have_text("Buy now", timeout=LINE_TIMEOUT_MS)
    await line_button(shop, product).click()
    await expect(shop.order_dialog).to_be_visible()
    await expect(shop.order_badge).to_have_attribute("data-status", "PENDING")
    await expect(shop.order_dialog.locator(".order-line")).to_contain_text("Numbered print")
    await shop.screenshot("order")
    await shop.page.keyboard.press("Escape")
    await expect(panel(shop, product)).to_contain_text("You got it!", timeout=LINE_TIMEOUT_MS)
    await expect(shop.page.locator("#orders-list .order-row")).to_have_count(1)
    await expect(shop.page.locator("#orders-list .order-row")).to_contain_text("Numbered print")
    await shop.screenshot("bought")
    assert [] == shop.errors


async def test_the_line_says_likely_sold_out_then_sold_out_as_the_last_unit_goes(
    shop: Storefront, staff: Api, api: Api,
) -> None:
    """One unit, a shopper ahead holding the pass: "Very likely sold out", then "Sold out" once they buy."""
    marker = f"drop{uuid.uuid4().hex[:10]}"
    product = await create_product(staff, marker, "Last-one sneaker", price_cents=9900, stock=1, max_per_customer=1)
    drop = await create_drop(staff, [product], starts_in=2, maxActive=1, passTtlSeconds=120)
    (holder,) = await customers(api, 1)
    await join(holder, drop)
    await wait_started(drop)
    await wait_status(holder, drop, "ADMITTED")

    await shop.open(search=marker)
    await line_button(shop, product).click()
    await expect(panel(shop, product)).to_contain_text("Very likely sold out.", timeout=LINE_TIMEOUT_MS)
    await expect(button_label(shop, product)).to_have_text("Likely sold out")
    await shop.screenshot("likely-sold-out")

    assert [] == (await buy(holder, product))["errors"]
    await expect(panel(shop, product)).to_contain_text("Sold out.", timeout=LINE_TIMEOUT_MS)
    await expect(panel(shop, product)).to_have_attribute("data-status", "SOLD_OUT")
    await expect(line_button(shop, product)).to_be_disabled()
    await shop.screenshot("sold-out")
    assert [] == shop.errors


async def test_a_place_taken_before_the_start_waits_for_the_shuffle_and_an_ended_drop_sells_as_usual(
    shop: Storefront, staff: Api,
) -> None:
    """Joined early: "You're in line" with the time to the start and no position; staff end the drop: "Add to cart"."""
    marker = f"drop{uuid.uuid4().hex[:10]}"
    product = await create_product(staff, marker, "Early bird tee", price_cents=2500, stock=20)
    drop = await create_drop(staff, [product], starts_in=120, admitPerSecond=5)

    await shop.open(search=marker)
    await expect(panel(shop, product)).to_contain_text(re.compile(r"The line opens in [12]:\d\d"))
    await line_button(shop, product).click()
    await expect(panel(shop, product)).to_contain_text("You're in line.")
    await expect(panel(shop, product)).to_contain_text("everyone in line by then gets a random place")
    await expect(button_label(shop, product)).to_have_text("In line")
    await shop.screenshot("before-the-start")
    # A reload finds the place again.
    await shop.open(search=marker)
    await expect(panel(shop, product)).to_contain_text("You're in line.")

    ended = await staff(END, id=drop["id"])
    assert [] == ended["dropEnd"]["errors"]
    await expect(shop.card(product).locator(".drop-panel")).to_have_count(0, timeout=LINE_TIMEOUT_MS)
    await expect(button_label(shop, product)).to_have_text("Add to cart")
    await shop.add_to_cart(product, expect_count=1)
    await shop.screenshot("ended")
    assert [] == shop.errors
