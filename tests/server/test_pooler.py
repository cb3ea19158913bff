"""The PgBouncer pass of `make test`: the API and the worker reach PostgreSQL through a real PgBouncer.

That pass (RUSHCART_TEST_POOLER=pgbouncer) runs the order, payment and persistence tests with
DATABASE_POOLER=pgbouncer, the setting that keeps asyncpg and SQLAlchemy from relying on
prepared statements a transaction-pooling PgBouncer 1.18 cannot carry between transactions.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.api import Api
from tests.stack import Stack

pytestmark = pytest.mark.skipif(os.environ.get("RUSHCART_TEST_POOLER") != "pgbouncer",
                                reason="runs in the PgBouncer pass of make test (RUSHCART_TEST_POOLER=pgbouncer)")

PLACE = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         "{ order { id status } errors { code } } }")


def transactions(stack: Stack) -> int:
    assert stack.pgbouncer is not None
    return sum(int(row["total_xact_count"]) for row in stack.pgbouncer.show("STATS")
               if row["database"] != "pgbouncer")


async def test_orders_are_written_through_pgbouncer(stack: Stack, api: Api, email: str, make_product,
                                                    wait_persisted: Any) -> None:
    """An order placed and persisted while PgBouncer pools in transaction mode is counted by PgBouncer."""
    product = await make_product(stock=5)
    before = transactions(stack)
    buyer = await api.register(email, "a long enough password")
    placed = (await buyer(PLACE, l=[{"productId": product["id"], "quantity": 2}], k="through-pgbouncer"))["placeOrder"]
    assert ([], "PENDING") == (placed["errors"], placed["order"]["status"])
    await wait_persisted([placed["order"]["id"]])
    assert transactions(stack) > before
    pools = [row for row in stack.pgbouncer.show("POOLS") if row["database"] != "pgbouncer"] if stack.pgbouncer else []
    assert ["transaction"] == sorted({row["pool_mode"] for row in pools})
