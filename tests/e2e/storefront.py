"""The demo storefront as a test sees it: locators by role and label, and screenshots.

Imports Playwright: import this module only after `browser.missing_reason()` returned None.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect
from playwright.async_api import Error as PlaywrightError

from tests.api import Api

PASSWORD = "correct horse battery"


@dataclass
class Storefront:
    page: Page
    base_url: str
    screenshots: Path
    name: str
    errors: list[str] = field(default_factory=list)
    _shots: int = 0

    async def open(self, search: str | None = None) -> None:
        await self.page.goto(f"{self.base_url}/" + (f"?search={search}" if search else ""))
        await expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    async def screenshot(self, step: str) -> Path:
        self._shots += 1
        path = self.screenshots / f"{self.name}-{self._shots:02d}-{step}.png"
        await self.page.screenshot(path=str(path), animations="disabled")
        return path

    # --- the catalogue ---------------------------------------------------------------------

    @property
    def cards(self) -> Locator:
        return self.page.locator("#product-grid .product-card[data-product-id]")

    def card(self, product: dict[str, Any]) -> Locator:
        return self.page.locator(f'.product-card[data-product-id="{product["id"]}"]')

    def add_button(self, product: dict[str, Any]) -> Locator:
        return self.card(product).get_by_role("button", name=re.compile(r"^(Add to cart|Sold out|Adding|Added)"))

    async def add_to_cart(self, product: dict[str, Any], expect_count: int) -> None:
        button = self.card(product).get_by_role("button", name=re.compile(r"^Add to cart"))
        await button.click()
        await expect(self.cart_count).to_have_text(str(expect_count))

    # --- header, cart and dialogs ----------------------------------------------------------

    @property
    def cart_button(self) -> Locator:
        return self.page.get_by_role("button", name=re.compile(r"^Cart, "))

    @property
    def cart_count(self) -> Locator:
        return self.page.locator("#cart-count")

    @property
    def drawer(self) -> Locator:
        return self.page.get_by_role("dialog", name="Your cart")

    @property
    def order_dialog(self) -> Locator:
        return self.page.get_by_role("dialog", name=re.compile(r"^Order #"))

    @property
    def order_badge(self) -> Locator:
        return self.order_dialog.locator("#order-status .status-badge")

    async def open_cart(self) -> Locator:
        await self.cart_button.click()
        await expect(self.drawer).to_be_visible()
        return self.drawer

    async def sign_up_or_in(self, email: str, *, register: bool, password: str = PASSWORD) -> None:
        """Opens the sign-in dialog from the header (or uses the one already open) and submits it."""
        dialog = self.page.locator("#auth-dialog")
        if not await dialog.is_visible():
            await self.page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="Create account" if register else "Sign in").first.click()
        await dialog.get_by_label("Email").fill(email)
        await dialog.get_by_label("Password").fill(password)
        await dialog.get_by_label("Password").press("Enter")
        await expect(dialog).to_be_hidden()
        await expect(self.page.locator("#account-email")).to_have_text(email)

    async def stored(self, key: str) -> str | None:
        value = await self.page.evaluate("key => localStorage.getItem(key)", key)
        return str(value) if value is not None else None


def _remove_screenshots(screenshots: Path, name: str) -> None:
    for old in screenshots.glob(f"{name}-*.png"):
        old.unlink()


@contextlib.asynccontextmanager
async def fresh_storefront(browser: Browser, base_url: str, screenshots: Path, name: str) -> AsyncIterator[Storefront]:
    """The storefront in a fresh browser profile (empty localStorage and cookies), its page errors
    collected, earlier screenshots of `name` removed and a last one taken at the end."""
    _remove_screenshots(screenshots, name)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await context.new_page()
    store = Storefront(page, base_url, screenshots, name)
    page.on("pageerror", lambda error: store.errors.append(str(error)))
    try:
        yield store
    finally:
        with contextlib.suppress(PlaywrightError):
            await store.screenshot("last")
        await context.close()


async def create_product(staff: Api, marker: str, name: str, *, price_cents: int, stock: int,
                         description: str = "", max_per_customer: int | None = None) -> dict[str, Any]:
    """A product whose sku carries `marker`, so `/?search=<marker>` shows this test's products only."""
    data = await staff(
        "mutation($i: ProductInput!) { productCreate(input: $i) { product { id sku name priceCents available } "
        "errors { code message field } } }",
        i={"sku": f"{marker}-{uuid.uuid4().hex[:8]}", "name": name, "description": description,
           "priceCents": price_cents, "stock": stock, "maxPerCustomer": max_per_customer},
    )
    assert data["productCreate"]["errors"] == [], data
    return dict(data["productCreate"]["product"])
