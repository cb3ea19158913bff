"""Found by reading what scenario 2 risks (now fixed): a process that died while cancelling could oversell.

cancel_in_session (db/order_transitions.py) gives the units back to the Redis counter (and the
buyer's allowance) inside the PostgreSQL transaction, before COMMIT. If the process dies between
that Redis step and COMMIT (kill -9 of an API process answering cancelOrder, or of a worker
expiring orders or applying a payment.failed), PostgreSQL rolls the cancellation back: the order
stays PENDING and keeps its units, but Redis already offers them again. Buyers are then answered
PENDING for units that do not exist (oversell); persisting such an order takes product_stock
below zero, which its CHECK refuses, so its batch fails on every retry, and as every drain starts
from the head of orders:topersist, no order queued after it is persisted either.

The crash is made exact here: the cancellation runs on the server's own stores in this process,
and the transaction is abandoned right after cancel_in_session, as a kill -9 at that point would.
"""

from __future__ import annotations

from typing import Any

import pytest

from db.enums import CancelReason
from db.order_transitions import OrderRef, cancel_in_session
from tests.chaos.invariants import available, drain
from tests.chaos.sale import PLACE, Buyer, Client, Endpoints
from tests.stack import Stack

pytestmark = pytest.mark.chaos


class ProcessDied(Exception):
    """Stands for the kill -9 that stops a process after its Redis step, before its COMMIT."""


async def test_a_cancel_that_dies_before_commit_puts_no_unit_on_sale_twice(
    stack: Stack, buyers: list[Buyer], make_product, pg: Any, redis: Any, state: Any
) -> None:
    """A process dies between a cancellation's Redis step and its COMMIT: nobody can buy the units it still holds."""
    product = await make_product(stock=3)
    pid = int(product["id"])
    first, second = buyers[0], buyers[1]
    client = Client(Endpoints([stack.base_url]), 4)
    try:
        data = await client.graphql(PLACE, {"l": [{"productId": str(pid), "quantity": 2}], "k": f"crash-{pid}-1"},
                                    first.token)
        order_id = data["placeOrder"]["order"]["id"]
        await drain(stack, redis, pg)  # persisted: product_stock 1, available 1
        with pytest.raises(ProcessDied):
            async with state.backends.sessions() as session, session.begin():
                won = await cancel_in_session(state.backends, session, [OrderRef(first.customer_id, order_id)],
                                              CancelReason.CUSTOMER)
                if len(won) != 1:
                    pytest.fail("the cancellation did not win")
                raise ProcessDied()
        still = await pg.fetchrow("SELECT o.status, s.stock FROM orders o, product_stock s WHERE o.id = $1::uuid "
                                  "AND s.product_id = $2", order_id, pid)
        if tuple(still) != ("PENDING", 1):
            pytest.fail(f"not the state a crash before COMMIT leaves: {tuple(still)}")
        # One unit is left; the order whose cancellation was rolled back still holds the other two.
        # (Checked before buying: an order for units that do not exist could never be persisted, and
        # would block every batch behind it for the rest of the session.)
        assert 1 == await available(stack.base_url, pid), "units still held by an order are on sale again"
        data = await client.graphql(PLACE, {"l": [{"productId": str(pid), "quantity": 3}], "k": f"crash-{pid}-2"},
                                    second.token)
        placed = data["placeOrder"]
        refusals = [(e["code"], e["available"]) for e in placed["errors"]]
        assert (None, [("OUT_OF_STOCK", 1)]) == (placed["order"], refusals), "3 units sold where 1 was left"
    finally:
        await client.aclose()
