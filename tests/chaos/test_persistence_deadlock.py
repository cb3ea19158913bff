"""Two transactions persisting orders of the same product at once must not deadlock.

Found by scenario 1 (cancels racing a worker's catch-up batches): persist_orders used to insert
`order_items` first, whose foreign key to products takes FOR KEY SHARE on each product row, and
only then lock the same rows FOR UPDATE; two such transactions (a worker's batch and a cancelOrder
persisting its order first, two cancels, two workers) each held KEY SHARE and waited for the
other's, PostgreSQL killed one after deadlock_timeout, and its caller answered "Unexpected error."
(fixed in 9c88b44: the rows are locked FOR UPDATE before the items are inserted).

Since migration 0003 the rows locked FOR UPDATE are the products' `product_stock` rows, which
no foreign key share-locks, and the interleaving is kept: a transaction holding the stock row
FOR NO KEY UPDATE (as a restock would) keeps both cancels waiting at their FOR UPDATE; when it
ends, both go on, one after the other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.chaos.sale import CANCEL, PLACE, Buyer, Client, Endpoints, SaleProduct
from tests.stack import Stack, eventually

pytestmark = pytest.mark.chaos

WAITING_FOR_A_LOCK = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND wait_event_type = 'Lock'")


async def test_two_cancels_persisting_orders_of_one_product_both_succeed(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], pg: Any
) -> None:
    """Two buyers cancel their not yet persisted orders of one product at once: both are cancelled."""
    product = sale_products[0]
    first, second = buyers[0], buyers[1]
    client = Client(Endpoints([stack.base_url]), 8)
    stack.stop_workers()  # the orders stay in Redis, so each cancel persists its order first
    try:
        orders = []
        for i, buyer in enumerate((first, second)):
            data = await client.graphql(PLACE, {"l": [{"productId": str(product.id), "quantity": 1}],
                                                "k": f"deadlock-{product.id}-{i}"}, buyer.token)
            orders.append((buyer, data["placeOrder"]["order"]["id"]))
        async with pg.acquire() as edit:
            transaction = edit.transaction()
            await transaction.start()
            await edit.execute("UPDATE product_stock SET stock = stock WHERE product_id = $1", product.id)
            cancels = [asyncio.create_task(client.graphql(CANCEL, {"id": oid}, buyer.token)) for buyer, oid in orders]

            async def both_waiting() -> bool:
                return await pg.fetchval(WAITING_FOR_A_LOCK) == 2

            await eventually(both_waiting, timeout=20, message="both cancels to wait for the product row")
            await transaction.rollback()
        answers = await asyncio.gather(*cancels, return_exceptions=True)
    finally:
        await client.aclose()
        stack.start_worker()
    statuses = [a if isinstance(a, Exception) else a["cancelOrder"]["order"]["status"] for a in answers]
    assert ["CANCELLED", "CANCELLED"] == statuses
