"""Setting up a sale through rushcart's public API: staff sign-in, products, buyers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

STAFF_EMAIL = "bench-staff@example.com"
STAFF_PASSWORD = "bench staff password"
BUYER_PASSWORD = "bench buyer password"


class SeedError(Exception):
    """The API refused a set-up step; the message carries its answer."""


@dataclass(frozen=True)
class Buyer:
    customer_id: int
    token: str


@dataclass(frozen=True)
class Sale:
    products: list[int]
    warmup_products: list[int]
    stock: dict[int, int]  # initial stock per product, warm-up products included


class GraphQL:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self.url = url

    async def __call__(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self._client.post(self.url, json={"query": query, "variables": variables}, headers=headers)
        doc = response.json()
        if response.status_code != 200 or doc.get("errors"):
            raise SeedError(f"{response.status_code}: {doc.get('errors') or doc}")
        return dict(doc["data"])


def _payload(data: dict[str, Any], name: str) -> dict[str, Any]:
    payload = data[name]
    if payload.get("errors"):
        raise SeedError(f"{name}: {payload['errors']}")
    return dict(payload)


async def staff_token(api: GraphQL) -> str:
    data = await api(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token errors { code message } } }",
        e=STAFF_EMAIL, p=STAFF_PASSWORD,
    )
    return str(_payload(data, "login")["token"])


async def create_product(api: GraphQL, token: str, sku: str, stock: int, max_per_customer: int | None) -> int:
    data = await api(
        "mutation($i: ProductInput!) { productCreate(input: $i) { product { id } errors { code message field } } }",
        token,
        i={"sku": sku, "name": f"Flash sale {sku}", "priceCents": 1999, "stock": stock,
           "maxPerCustomer": max_per_customer},
    )
    return int(_payload(data, "productCreate")["product"]["id"])


async def create_sale(api: GraphQL, token: str, prefix: str, products: int, stock: int,
                      max_per_customer: int | None, warmup: bool) -> Sale:
    """Fresh products for one variant; the warm-up product has stock to spare and no limit."""
    ids = [await create_product(api, token, f"{prefix}-{i}", stock, max_per_customer) for i in range(products)]
    warmup_ids = [await create_product(api, token, f"{prefix}-warmup", 1_000_000, None)] if warmup else []
    initial = {pid: stock for pid in ids} | {pid: 1_000_000 for pid in warmup_ids}
    return Sale(ids, warmup_ids, initial)


async def register_buyers(apis: list[GraphQL], count: int, prefix: str, concurrency: int) -> list[Buyer]:
    """Register `count` buyers, spread over the API processes; argon2 makes each one cost ~0.1 s of CPU."""
    gate = asyncio.Semaphore(concurrency)

    async def register(i: int) -> Buyer:
        async with gate:
            data = await apis[i % len(apis)](
                "mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
                "{ token customer { id } errors { code message } } }",
                e=f"{prefix}-{i}@example.com", p=BUYER_PASSWORD,
            )
        payload = _payload(data, "register")
        return Buyer(int(payload["customer"]["id"]), str(payload["token"]))

    return list(await asyncio.gather(*[register(i) for i in range(count)]))
