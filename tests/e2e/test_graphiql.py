"""GraphiQL in a real browser with every request off the test server refused: it renders and runs
queries and subscriptions from the server's own assets.

Skipped, with the reason, where Playwright for Python or a Chromium executable is missing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from tests.e2e.browser import missing_reason

_missing = missing_reason()
if _missing:
    pytest.skip(f"browser tests skipped: {_missing}", allow_module_level=True)

from playwright.async_api import Browser, BrowserContext, Page, Route, expect  # noqa: E402

from tests.api import Api  # noqa: E402
from tests.conftest import unique  # noqa: E402
from tests.resolvers.test_orders import place  # noqa: E402
from tests.stack import OUTPUT, Stack  # noqa: E402

SCREENSHOTS = OUTPUT / "e2e"

expect.set_options(timeout=20_000)


class Offline:
    """A browser profile that reaches the test server and nothing else."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.refused: list[str] = []

    async def route(self, route: Route) -> None:
        if route.request.url.startswith(self.base_url + "/"):
            await route.continue_()
        else:
            self.refused.append(route.request.url)
            await route.abort("internetdisconnected")


@pytest.fixture
async def offline(browser: Browser, stack: Stack) -> AsyncIterator[Offline]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    profile = Offline(context, stack.base_url)
    await context.route("**/*", profile.route)
    try:
        yield profile
    finally:
        await context.close()


async def open_graphiql(offline: Offline, query: str) -> Page:
    page = await offline.context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{offline.base_url}/graphql?q={quote(query)}")
    await expect(page.locator(".graphiql-query-editor")).to_be_visible()
    assert [] == errors
    return page


async def run(page: Page) -> None:
    await page.locator(".graphiql-execute-button").click()


async def test_graphiql_renders_and_runs_a_query_with_the_network_cut_off(offline: Offline, make_product) -> None:
    """With only the test server reachable, GraphiQL loads, runs a query and shows its answer."""
    product = await make_product(stock=4, name=unique("GraphiQL product "))
    page = await open_graphiql(offline, f'{{ product(id: "{product["id"]}") {{ name available }} }}')
    await run(page)
    response = page.locator(".graphiql-response")
    await expect(response).to_contain_text(product["name"])
    await expect(response).to_contain_text('"available": 4')
    await page.screenshot(path=str(SCREENSHOTS / "graphiql-offline-query.png"))
    assert [] == offline.refused


async def test_graphiql_subscription_carries_the_headers_authorization(offline: Offline, api: Api,
                                                                      make_product) -> None:
    """The headers editor's Authorization reaches the WebSocket: a signed-in subscription answers."""
    buyer = await api.register(f"{unique('graphiql')}@example.com")
    order = (await place(buyer, (await make_product(), 1)))["order"]
    headers = json.dumps({"Authorization": f"Bearer {buyer.token}"})
    # What GraphiQL keeps of its headers editor (shouldPersistHeaders), set before the page starts.
    await offline.context.add_init_script(f"localStorage.setItem('graphiql:headers', {json.dumps(headers)});")
    page = await open_graphiql(offline, f'subscription {{ orderStatus(orderId: "{order["id"]}") {{ status }} }}')
    await run(page)
    await expect(page.locator(".graphiql-response")).to_contain_text('"status": "PENDING"')
    assert [] == offline.refused
