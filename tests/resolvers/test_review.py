"""Staff review queries: orders needing a refund and payment events held, waiting or orphaned, paged by
cursor, refused to everyone but staff."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers import cursors
from tests.api import Api, GraphQLErrors
from tests.conftest import unique
from tests.resolvers.test_orders import CANCEL, place
from tests.server.test_webhooks import event, post
from tests.stack import Stack, eventually

REFUNDS = ("query($first: Int, $after: String) { ordersNeedingRefund(first: $first, after: $after) "
           "{ edges { cursor node { id status cancelReason needsRefund totalCents } } "
           "pageInfo { endCursor hasNextPage } } }")
EVENTS = ("query($first: Int, $after: String, $state: PaymentEventState) "
          "{ paymentEventsForReview(first: $first, after: $after, state: $state) "
          "{ edges { cursor node { id type orderId amountCents currency state outcome providerCreatedAt "
          "receivedAt appliedAt order { id status } } } pageInfo { endCursor hasNextPage } } }")


async def everything(client: Api, query: str, field: str, page_size: int = 100,
                     **variables: Any) -> list[dict[str, Any]]:
    """Every node of a list, following its cursors page by page."""
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await client(query, first=page_size, after=after, **variables))[field]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def error_code(raised: pytest.ExceptionInfo[GraphQLErrors]) -> str:
    [error] = raised.value.errors
    return str(error["extensions"]["code"])


@pytest.fixture
async def buyer(api: Api) -> Api:
    return await api.register(f"{unique('review')}@example.com")


async def test_guests_and_customers_are_refused(api: Api, buyer: Api) -> None:
    """Guests get NOT_AUTHENTICATED and customers FORBIDDEN from both review queries."""
    for client, code in ((api, "NOT_AUTHENTICATED"), (buyer, "FORBIDDEN")):
        for query in (REFUNDS, EVENTS):
            with pytest.raises(GraphQLErrors) as raised:
                await client(query)
            assert code == error_code(raised)


async def test_orders_paid_after_cancellation_are_listed_for_refund(stack: Stack, staff: Api, buyer: Api,
                                                                    make_product) -> None:
    """An order paid after it was cancelled appears in ordersNeedingRefund; a cancelled order nobody paid does not."""
    product = await make_product(stock=5, price_cents=1500)
    refunded, unpaid = [(await place(buyer, (product, 1)))["order"] for _ in range(2)]
    for order in (refunded, unpaid):
        assert [] == (await buyer(CANCEL, id=order["id"]))["cancelOrder"]["errors"]
    assert 202 == (await post(stack, event(refunded))).status_code

    async def listed() -> dict[str, Any] | None:
        nodes = {node["id"]: node for node in await everything(staff, REFUNDS, "ordersNeedingRefund")}
        assert unpaid["id"] not in nodes
        return nodes.get(refunded["id"])

    node = await eventually(listed, timeout=20, message="the order to be listed for a refund")
    assert {"id": refunded["id"], "status": "CANCELLED", "cancelReason": "CUSTOMER", "needsRefund": True,
            "totalCents": 1500} == node


async def test_refund_pages_follow_their_cursors(staff: Api) -> None:
    """Pages of one order, each after the previous endCursor, give the same orders in the same order
    (newest first) as one page."""
    whole = (await staff(REFUNDS, first=100))["ordersNeedingRefund"]["edges"]
    ids = [edge["node"]["id"] for edge in whole]
    assert ids == sorted(ids, reverse=True)
    paged, after = [], None
    for _ in range(min(len(ids), 3)):
        page = (await staff(REFUNDS, first=1, after=after))["ordersNeedingRefund"]
        paged += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert ids[:len(paged)] == paged


async def test_held_waiting_and_orphaned_events_are_listed(stack: Stack, staff: Api, buyer: Api,
                                                           make_product) -> None:
    """Events held for a wrong amount, waiting for an order that never came, or naming no order are listed
    by default with their state, outcome and order; an applied event only when asked for by state."""
    product = await make_product(price_cents=1000)
    order = (await place(buyer, (product, 1)))["order"]
    held = event(order, amount_cents=2**40)  # beyond GraphQL's Int: served as digits
    waiting = event(None, order_id="01890000-0000-7000-8000-00000000beef")
    orphaned = event(None, order_id="not-an-order")
    for body in (held, waiting, orphaned):
        assert 202 == (await post(stack, body)).status_code
    wanted = {held["id"]: "REVIEW", waiting["id"]: "WAITING", orphaned["id"]: "ORPHANED"}

    async def all_listed() -> dict[str, dict[str, Any]] | None:
        nodes = {n["id"]: n for n in await everything(staff, EVENTS, "paymentEventsForReview") if n["id"] in wanted}
        return nodes if {k: n["state"] for k, n in nodes.items()} == wanted else None

    nodes = await eventually(all_listed, timeout=20, message="the three events to be listed for review")
    assert {"type": "payment.succeeded", "orderId": order["id"], "amountCents": str(2**40), "currency": "USD",
            "state": "REVIEW", "outcome": "amount_mismatch", "order": {"id": order["id"], "status": "PENDING"}} \
        == {k: v for k, v in nodes[held["id"]].items() if k not in {"id", "providerCreatedAt", "receivedAt",
                                                                    "appliedAt"}}
    assert nodes[held["id"]]["appliedAt"] is not None
    assert (None, None) == (nodes[waiting["id"]]["order"], nodes[waiting["id"]]["outcome"])
    assert ("not_an_order_id", None) == (nodes[orphaned["id"]]["outcome"], nodes[orphaned["id"]]["order"])

    only_review = await everything(staff, EVENTS, "paymentEventsForReview", state="REVIEW")
    assert {"REVIEW"} == {n["state"] for n in only_review}
    assert held["id"] in {n["id"] for n in only_review}


async def test_applied_events_are_listed_by_state(stack: Stack, staff: Api, buyer: Api, make_product) -> None:
    """state: APPLIED lists a paid order's event with outcome `paid`; the default list leaves it out."""
    product = await make_product()
    order = (await place(buyer, (product, 1)))["order"]
    paid = event(order)
    assert 202 == (await post(stack, paid)).status_code

    async def applied() -> dict[str, Any] | None:
        nodes = await everything(staff, EVENTS, "paymentEventsForReview", state="APPLIED")
        return next((n for n in nodes if n["id"] == paid["id"]), None)

    node = await eventually(applied, timeout=20, message="the event to be applied")
    assert ("APPLIED", "paid", {"id": order["id"], "status": "PAID"}) == (node["state"], node["outcome"], node["order"])
    assert paid["id"] not in {n["id"] for n in await everything(staff, EVENTS, "paymentEventsForReview")}


async def test_event_pages_follow_their_cursors(stack: Stack, staff: Api) -> None:
    """Pages of one event, each after the previous endCursor, give the events of one page in the same
    order (newest first)."""
    posted = [event(None, order_id="no-order-here") for _ in range(3)]
    for body in posted:
        assert 202 == (await post(stack, body)).status_code

    async def orphaned() -> bool:
        listed = {n["id"] for n in await everything(staff, EVENTS, "paymentEventsForReview")}
        return {body["id"] for body in posted} <= listed

    await eventually(orphaned, timeout=20, message="the three events to be orphaned")
    whole = (await staff(EVENTS, first=3))["paymentEventsForReview"]["edges"]
    paged, after = [], None
    for _ in range(3):
        page = (await staff(EVENTS, first=1, after=after))["paymentEventsForReview"]
        paged += [e["node"]["id"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert [e["node"]["id"] for e in whole] == paged
    received = [e["node"]["receivedAt"] for e in whole]
    assert received == sorted(received, reverse=True)


@pytest.mark.parametrize("after", [
    "not a cursor",
    cursors.encode("order", "01890000-0000-7000-8000-000000000000"),  # another list's cursor
    cursors.encode("payment_event", "12x:evt"),
    cursors.encode("payment_event", f"{10**20}:evt"),  # past year 9999
    cursors.encode("payment_event", "1700000000000000:"),
    cursors.encode("payment_event", "1700000000000000:evt\x00"),
])
async def test_bad_event_cursors_are_invalid_input(staff: Api, after: str) -> None:
    """A cursor the server did not make for this list is INVALID_INPUT, never an unexpected error."""
    with pytest.raises(GraphQLErrors) as raised:
        await staff(EVENTS, after=after)
    assert "INVALID_INPUT" == error_code(raised)


@pytest.mark.parametrize("after", ["not a cursor", cursors.encode("refund", "{01890000-0000-7000-8000-000000000000}"),
                                   cursors.encode("payment_event", "1:evt")])
async def test_bad_refund_cursors_and_first_are_invalid_input(staff: Api, after: str) -> None:
    """A foreign or malformed cursor, or a negative `first`, is INVALID_INPUT on ordersNeedingRefund."""
    with pytest.raises(GraphQLErrors) as raised:
        await staff(REFUNDS, after=after)
    assert "INVALID_INPUT" == error_code(raised)
    with pytest.raises(GraphQLErrors) as raised:
        await staff(REFUNDS, first=-1)
    assert "INVALID_INPUT" == error_code(raised)
