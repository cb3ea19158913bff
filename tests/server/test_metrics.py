"""GET /metrics: Prometheus text with the figures an operator watches during a sale."""

from __future__ import annotations

import re

import httpx

from schema.persisted import manifest
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import lines, place
from tests.server.test_webhooks import event, post
from tests.stack import Stack


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"(\{[^}]*\})?") + r" ([0-9.e+-]+)"
    values = [float(m.group(m.lastindex or 1)) for m in re.finditer(pattern, text)]
    assert values, f"{name}{{{labels}}} not in /metrics"
    return sum(values)


async def scrape(stack: Stack) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.base_url}/metrics")
    assert 200 == response.status_code and response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_orders_webhooks_and_show_the_backlog(stack: Stack, api: Api, make_product) -> None:
    """Accepted and refused orders, webhook answers and the persistence backlog all show up."""
    before = await scrape(stack)
    buyer = await api.register(f"{unique('metrics')}@example.com")
    product = await make_product(stock=1)
    order = (await place(buyer, (product, 1)))["order"]
    await place(buyer, (product, 1))
    await post(stack, event(order))
    after = await scrape(stack)

    def grew(name: str, labels: str) -> float:
        previous = sample(before, name, labels) if f"{name}{{{labels}}}" in before else 0.0
        return sample(after, name, labels) - previous

    assert grew("rushcart_orders_total", 'outcome="accepted"') >= 1
    assert grew("rushcart_orders_total", 'outcome="OUT_OF_STOCK"') >= 1
    assert grew("rushcart_webhook_events_total", 'outcome="accepted"') >= 1
    assert sample(after, "rushcart_reservation_seconds_count") >= 2
    for gauge in ("rushcart_queue_depth", "rushcart_orders_awaiting_persistence", "rushcart_persistence_lag_seconds",
                  "rushcart_active_subscriptions"):
        sample(after, gauge)


def grown(before: str, after: str, name: str, labels: str = "") -> float:
    """How much a sample grew between two scrapes; one not shown yet counts as zero."""
    try:
        previous = sample(before, name, labels)
    except AssertionError:
        previous = 0.0
    return sample(after, name, labels) - previous


async def test_buys_count_under_an_alias_and_by_document_id(stack: Stack, api: Api, make_product) -> None:
    """An aliased `buy: placeOrder` sent as text and a persisted PlaceOrder by documentId are both counted."""
    buyer = await api.register(f"{unique('metrics')}@example.com")
    product = await make_product(stock=2)
    ids = manifest()
    before = await scrape(stack)
    aliased = await buyer(
        "mutation($l: [OrderLineInput!]!, $k: String!) { buy: placeOrder(lines: $l, idempotencyKey: $k) "
        "{ errors { code } } }", l=lines((product, 1)), k=unique("k"))
    assert aliased["buy"]["errors"] == []
    async with httpx.AsyncClient(timeout=30) as client:
        for quantity in (1, 5):  # accepted, then refused
            response = await client.post(stack.graphql_url, headers=buyer.headers(), json={
                "documentId": ids["PlaceOrder"], "variables": {"lines": lines((product, quantity)),
                                                               "idempotencyKey": unique("k")}})
            assert 200 == response.status_code
    after = await scrape(stack)
    assert 2 == grown(before, after, "rushcart_orders_total", 'outcome="accepted"')
    assert 1 == grown(before, after, "rushcart_orders_total", 'outcome="OUT_OF_STOCK"')
    assert 3 == grown(before, after, "rushcart_reservation_seconds_count")
