"""GET /metrics: Prometheus text with the figures an operator watches during a sale."""

from __future__ import annotations

import re

import httpx

from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import place
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
