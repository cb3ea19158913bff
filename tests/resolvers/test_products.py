"""Catalogue reads, staff-only changes, cache invalidation and live `available`."""

from __future__ import annotations

from typing import Any

import pytest

from db import keys
from tests.api import Api, GraphQLErrors
from tests.conftest import PRODUCT_FIELDS, unique

CREATE = (
    "mutation($i: ProductInput!) { productCreate(input: $i) { product { id sku available } "
    "errors { code message field } } }"
)
UPDATE = (
    "mutation($id: ID!, $i: ProductUpdateInput!) { productUpdate(id: $id, input: $i) "
    f"{{ product {{ {PRODUCT_FIELDS} }} errors {{ code message field }} }} }}"
)
ADJUST = (
    "mutation($id: ID!, $d: Int!) { stockAdjust(productId: $id, delta: $d) { product { id available } "
    "errors { code message field productId available } } }"
)
GET = f"query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"


def product_input(**overrides: Any) -> dict[str, Any]:
    return {"sku": unique("SKU-"), "name": "Test product", "priceCents": 2599, "stock": 5, **overrides}


async def test_created_product_is_readable_with_live_available(make_product, api: Api) -> None:
    """A product staff creates can be read by anyone, `available` equal to its stock."""
    created = await make_product(stock=7, price_cents=2599, max_per_customer=2)
    data = await api(GET, id=created["id"])
    assert {**created, "available": 7} == data["product"]
    assert ("USD", 2, "") == (data["product"]["currency"], data["product"]["maxPerCustomer"],
                              data["product"]["description"])


async def test_unknown_or_malformed_product_id_reads_as_null(api: Api) -> None:
    """product(id) is null for an id that does not exist or is not an id at all."""
    assert {"product": None} == await api(GET, id="987654321")
    assert {"product": None} == await api(GET, id="not-a-number")


async def test_products_paginate_with_cursors(make_product, api: Api) -> None:
    """Pages follow each other through endCursor without gaps or repeats."""
    marker = unique("page")
    made = [await make_product(name=f"{marker} {i}") for i in range(5)]
    query = (
        "query($s: String, $a: String) { products(first: 2, after: $a, search: $s) "
        "{ edges { cursor node { id } } pageInfo { endCursor hasNextPage } } }"
    )
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await api(query, s=marker, a=after))["products"]
        seen += [edge["node"]["id"] for edge in data["edges"]]
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert ([p["id"] for p in made], 3) == (seen, pages)


async def test_products_search_matches_name_and_sku_case_insensitively(make_product, api: Api) -> None:
    """search finds a product by part of its name or sku, in any case."""
    marker = unique("Zebra")
    product = await make_product(name=f"Striped {marker} scarf")
    by_name = await api("query($s: String) { products(search: $s) { edges { node { id } } } }",
                        s=marker.lower())
    by_sku = await api("query($s: String) { products(search: $s) { edges { node { id } } } }",
                       s=product["sku"][4:].upper())
    assert [product["id"]] == [e["node"]["id"] for e in by_name["products"]["edges"]]
    assert [product["id"]] == [e["node"]["id"] for e in by_sku["products"]["edges"]]


async def test_products_first_is_capped_at_100(api: Api) -> None:
    """Asking for 1000 products returns at most 100."""
    data = await api("{ products(first: 1000) { edges { node { id } } } }")
    assert len(data["products"]["edges"]) <= 100


async def test_products_reject_negative_first_and_forged_cursors(api: Api) -> None:
    """A negative `first` or a cursor the server did not issue is a clear error."""
    with pytest.raises(GraphQLErrors, match="first must not be negative"):
        await api("{ products(first: -1) { edges { cursor } } }")
    with pytest.raises(GraphQLErrors, match="not a valid cursor"):
        await api('{ products(after: "bm90LWEtY3Vyc29y") { edges { cursor } } }')


async def test_catalogue_mutations_are_staff_only(api: Api, email: str) -> None:
    """Guests get NOT_AUTHENTICATED and customers FORBIDDEN for every catalogue mutation."""
    customer = await api.register(email)
    for client, code in ((api, "NOT_AUTHENTICATED"), (customer, "FORBIDDEN")):
        created = await client(CREATE, i=product_input())
        updated = await client(UPDATE, id="1", i={"name": "x"})
        adjusted = await client(ADJUST, id="1", d=5)
        assert [code] * 3 == [
            created["productCreate"]["errors"][0]["code"],
            updated["productUpdate"]["errors"][0]["code"],
            adjusted["stockAdjust"]["errors"][0]["code"],
        ]
        assert (None, None, None) == (
            created["productCreate"]["product"],
            updated["productUpdate"]["product"],
            adjusted["stockAdjust"]["product"],
        )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sku": ""}, "sku"),
        ({"sku": "has spaces"}, "sku"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"priceCents": -1}, "priceCents"),
        ({"stock": -5}, "stock"),
        ({"currency": "usd"}, "currency"),
        ({"maxPerCustomer": 0}, "maxPerCustomer"),
        ({"imageUrl": "javascript:alert(1)"}, "imageUrl"),
    ],
)
async def test_product_create_rejects_bad_input_naming_the_field(staff: Api, overrides, field) -> None:
    """Each malformed field of productCreate is INVALID_INPUT with `field` set, and nothing is created."""
    data = await staff(CREATE, i=product_input(**overrides))
    assert (None, [("INVALID_INPUT", field)]) == (
        data["productCreate"]["product"],
        [(e["code"], e["field"]) for e in data["productCreate"]["errors"]],
    )


async def test_duplicate_sku_is_invalid_input(staff: Api) -> None:
    """A second product with the same sku is refused with field sku."""
    first = product_input()
    await staff(CREATE, i=first)
    data = await staff(CREATE, i={**first, "name": "Other"})
    assert [("INVALID_INPUT", "sku")] == [(e["code"], e["field"]) for e in data["productCreate"]["errors"]]


async def test_update_changes_fields_and_invalidates_cache(make_product, staff: Api, api: Api) -> None:
    """After productUpdate, readers see the new values at once, not a cached copy."""
    product = await make_product(price_cents=1000)
    await api(GET, id=product["id"])  # warm the cache
    data = await staff(UPDATE, id=product["id"], i={"name": "Renamed", "priceCents": 1500,
                                                     "maxPerCustomer": 3})
    assert [] == data["productUpdate"]["errors"]
    read = (await api(GET, id=product["id"]))["product"]
    assert ("Renamed", 1500, 3) == (read["name"], read["priceCents"], read["maxPerCustomer"])


async def test_update_can_clear_the_purchase_limit(make_product, staff: Api, api: Api) -> None:
    """maxPerCustomer: null removes the limit; omitted fields stay as they were."""
    product = await make_product(max_per_customer=2)
    await staff(UPDATE, id=product["id"], i={"maxPerCustomer": None})
    read = (await api(GET, id=product["id"]))["product"]
    assert (None, product["name"]) == (read["maxPerCustomer"], read["name"])


async def test_update_rejects_bad_values_and_unknown_products(make_product, staff: Api) -> None:
    """A null name, negative price or unknown id is refused with a typed error."""
    product = await make_product()
    cases = [
        (product["id"], {"name": None}, "INVALID_INPUT"),
        (product["id"], {"priceCents": -3}, "INVALID_INPUT"),
        ("999999999", {"name": "x"}, "PRODUCT_NOT_FOUND"),
    ]
    for pid, changes, code in cases:
        data = await staff(UPDATE, id=pid, i=changes)
        assert [code] == [e["code"] for e in data["productUpdate"]["errors"]]


async def test_stock_adjust_moves_available_and_postgres_together(make_product, staff: Api, api: Api,
                                                                  pg, redis) -> None:
    """Restock and write-off change `available`, the Redis counter and product_stock alike."""
    product = await make_product(stock=5)
    up = await staff(ADJUST, id=product["id"], d=10)
    down = await staff(ADJUST, id=product["id"], d=-3)
    assert (15, 12) == (up["stockAdjust"]["product"]["available"],
                        down["stockAdjust"]["product"]["available"])
    assert 12 == (await api(GET, id=product["id"]))["product"]["available"]
    assert 12 == await pg.fetchval("SELECT stock FROM product_stock WHERE product_id = $1", int(product["id"]))
    assert "12" == await redis.get(keys.stock(product["id"]))


async def test_stock_adjust_cannot_write_off_more_than_is_there(make_product, staff: Api, api: Api) -> None:
    """Writing off more units than are available is INVALID_INPUT and changes nothing."""
    product = await make_product(stock=4)
    data = await staff(ADJUST, id=product["id"], d=-5)
    errors = data["stockAdjust"]["errors"]
    assert [("INVALID_INPUT", "delta", 4)] == [(e["code"], e["field"], e["available"]) for e in errors]
    assert 4 == (await api(GET, id=product["id"]))["product"]["available"]


async def test_stock_adjust_rejects_zero_and_unknown_product(staff: Api) -> None:
    """delta 0 is INVALID_INPUT; an unknown product is PRODUCT_NOT_FOUND."""
    zero = await staff(ADJUST, id="1", d=0)
    unknown = await staff(ADJUST, id="999999999", d=1)
    assert ["INVALID_INPUT", "PRODUCT_NOT_FOUND"] == [
        zero["stockAdjust"]["errors"][0]["code"], unknown["stockAdjust"]["errors"][0]["code"]
    ]


async def test_flushed_redis_rebuilds_counter_and_product_stays_readable(make_product, staff: Api,
                                                                          api: Api, redis) -> None:
    """After Redis loses the counter and the cache, reads rebuild both from PostgreSQL."""
    product = await make_product(stock=9)
    await staff(ADJUST, id=product["id"], d=-2)
    await redis.delete(keys.stock(product["id"]), keys.product(product["id"]))
    read = (await api(GET, id=product["id"]))["product"]
    assert (7, product["name"]) == (read["available"], read["name"])
    assert "7" == await redis.get(keys.stock(product["id"]))


async def test_available_is_batched_for_a_page(make_product, api: Api) -> None:
    """A page of products answers every `available`, with missing counters rebuilt."""
    marker = unique("batch")
    made = [await make_product(stock=i + 1, name=f"{marker} {i}") for i in range(3)]
    data = await api("query($s: String) { products(search: $s) { edges { node { id available } } } }",
                     s=marker)
    assert [1, 2, 3] == [e["node"]["available"] for e in data["products"]["edges"]]
    assert len(made) == len(data["products"]["edges"])
