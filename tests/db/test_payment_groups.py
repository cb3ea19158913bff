"""A burst's group of payment events: the common case applied together, every other case as before."""

from __future__ import annotations

import time
from typing import Any

from db.enums import CancelReason
from db.order_lifecycle import apply_payment_events
from db.order_transitions import OrderRef, cancel_orders
from db.payments import PaymentEvent, store_event
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import READ, place


async def test_a_group_pays_pending_orders_together_and_applies_the_rest_one_by_one(
    api: Api, make_product, state, stack, wait_persisted
) -> None:
    """In one group: each pending order with its one matching success ends PAID and its buyer reads PAID;
    beside them a wrong amount goes to review, a success for a cancelled order flags the refund, and an
    order with a failure then a success ends CANCELLED with the refund flagged. Applying again changes
    nothing."""
    product = await make_product(stock=20, price_cents=500)
    buyer = await api.register(f"{unique('group')}@example.com")
    orders = [(await place(buyer, (product, 1)))["order"] for _ in range(6)]
    await wait_persisted([o["id"] for o in orders])
    me = int((await buyer("{ me { id } }"))["me"]["id"])
    assert [orders[4]["id"]] == [ref.order_id for ref in await cancel_orders(
        state.backends, [OrderRef(me, orders[4]["id"])], CancelReason.CUSTOMER)]
    # Only this call may apply them: no drain job, no sweeper.
    stack.stop_workers()
    try:

        async def stored(order: dict[str, Any], kind: str, amount_cents: int = 500) -> str:
            event = PaymentEvent(id=unique("evt_group_"), type=kind, order_id=order["id"], amount_cents=amount_cents,
                                 currency="USD", created=int(time.time()), payload={})
            assert await store_event(state.backends.sessions, event)
            return event.id

        ids = [
            await stored(orders[0], "payment.succeeded"),
            await stored(orders[1], "payment.succeeded"),
            await stored(orders[2], "payment.succeeded", amount_cents=499),
            await stored(orders[3], "payment.failed"),
            await stored(orders[3], "payment.succeeded"),
            await stored(orders[4], "payment.succeeded"),
            await stored(orders[5], "payment.succeeded"),
        ]
        outcomes = await apply_payment_events(state.backends, ids)
        assert ["paid", "paid", "amount_mismatch", "cancelled", "refund_needed", "refund_needed", "paid"] == [
            outcomes[i] for i in ids]
        assert {i: "already_applied" for i in ids} == await apply_payment_events(state.backends, ids)
    finally:
        stack.start_worker()
    final = [(await buyer(READ, id=o["id"]))["order"] for o in orders]
    assert [("PAID", False), ("PAID", False), ("PENDING", False), ("CANCELLED", True), ("CANCELLED", True),
            ("PAID", False)] == [(o["status"], o["needsRefund"]) for o in final]
