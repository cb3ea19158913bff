"""DATABASE_READ_URL: lag-tolerant reads on a real streaming replica, without hiding a customer's own orders.

A replica of the test PostgreSQL is made with pg_basebackup; an API server and a worker run with
DATABASE_READ_URL pointing at it. Pausing WAL replay on the replica makes its lag certain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from db import keys
from tests.api import Api
from tests.conftest import unique
from tests.replica import Replica, replica_of
from tests.stack import ApiProcess, Stack, eventually

ORDER = "order { id status cancelReason } errors { code message }"
PLACE = (f"mutation($l: [OrderLineInput!]!, $k: String!) {{ placeOrder(lines: $l, idempotencyKey: $k) {{ {ORDER} }} }}")
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ {ORDER} }} }}"
ADD = "mutation($p: ID!, $q: Int!) { cartAddLine(productId: $p, quantity: $q) { errors { code } } }"
CHECKOUT = f"mutation($k: String!) {{ checkout(idempotencyKey: $k) {{ {ORDER} }} }}"
HISTORY = "{ orders(first: 10) { edges { node { id status } } } }"
SEARCH = "query($s: String!) { products(first: 5, search: $s) { edges { node { id } } } }"


@pytest.fixture(scope="module")
def replicated(stack: Stack) -> Iterator[tuple[Replica, ApiProcess]]:
    """A streaming replica, an API server and a worker that read from it (the worker marks writes)."""
    if stack.postgres is None:
        pytest.skip("needs the embedded PostgreSQL (DATABASE_URL is set)")
    replica = replica_of(stack.postgres, stack.postgres.data_dir.parent / "replica")
    url = replica.create()
    stack.stop_workers()
    try:
        stack.start_worker(DATABASE_READ_URL=url)
        server = stack.start_extra_server("server-replica", DATABASE_READ_URL=url)
        yield replica, server
    finally:
        stack.stop_extra_servers()
        stack.stop_workers()
        stack.start_worker()
        replica.stop("immediate")


async def pause_replay(replica: Replica) -> Any:
    conn = await replica.connect()
    await conn.execute("SELECT pg_wal_replay_pause()")

    async def paused() -> bool:
        return bool(await conn.fetchval("SELECT pg_get_wal_replay_pause_state() = 'paused'"))

    await eventually(paused, timeout=20, message="WAL replay to pause")
    return conn


def history(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["node"]["id"], e["node"]["status"]) for e in data["orders"]["edges"]]


async def test_catalogue_and_history_reads_reach_the_replica(
    replicated: tuple[Replica, ApiProcess], make_product, email: str, pg: Any, redis: Any, wait_persisted: Any
) -> None:
    """While replay is paused, a listing misses a product new on the primary, and a history without a
    write mark shows the replica's older status; both catch up when replay resumes."""
    replica, server = replicated
    api = Api(server.graphql_url)
    buyer = await api.register(email)
    product = await make_product(stock=5)
    placed = (await buyer(PLACE, l=[{"productId": product["id"], "quantity": 1}], k=unique("k")))["placeOrder"]
    order_id = placed["order"]["id"]
    await wait_persisted([order_id])
    conn = await replica.connect()

    async def replica_has_order() -> bool:
        return bool(await conn.fetchval("SELECT count(*) FROM orders WHERE id = $1::uuid", order_id))

    await eventually(replica_has_order, timeout=30, message="the replica to replay the order")
    await conn.close()
    conn = await pause_replay(replica)
    try:
        newer = await make_product(stock=5, name=unique("Replica lag "))
        customer_id = await pg.fetchval("SELECT customer_id FROM orders WHERE id = $1::uuid", order_id)
        await pg.execute("UPDATE orders SET status = 'CANCELLED', cancel_reason = 'STAFF' WHERE id = $1::uuid",
                         order_id)
        await redis.delete(keys.orders_written(customer_id))  # as after the mark's TTL
        assert [] == (await api(SEARCH, s=newer["sku"]))["products"]["edges"]
        assert [(order_id, "PENDING")] == history(await buyer(HISTORY))
    finally:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()

    async def caught_up() -> bool:
        listed = (await api(SEARCH, s=newer["sku"]))["products"]["edges"]
        return listed != [] and history(await buyer(HISTORY)) == [(order_id, "CANCELLED")]

    await eventually(caught_up, timeout=30, message="the replica's reads to catch up")


async def test_a_lagging_replica_does_not_hide_a_customers_new_order_or_its_new_status(
    replicated: tuple[Replica, ApiProcess], make_product, email: str, wait_persisted: Any
) -> None:
    """With replay paused, the customer's history still shows their just-persisted order, then its cancellation."""
    replica, server = replicated
    buyer = await Api(server.graphql_url).register(email)
    product = await make_product(stock=5)
    conn = await pause_replay(replica)
    try:
        placed = (await buyer(PLACE, l=[{"productId": product["id"], "quantity": 2}], k=unique("k")))["placeOrder"]
        order_id = placed["order"]["id"]
        await wait_persisted([order_id])
        assert 0 == await conn.fetchval("SELECT count(*) FROM orders WHERE id = $1::uuid", order_id)
        assert [(order_id, "PENDING")] == history(await buyer(HISTORY))
        cancelled = (await buyer(CANCEL, id=order_id))["cancelOrder"]
        assert ([], "CANCELLED") == (cancelled["errors"], cancelled["order"]["status"])
        assert [(order_id, "CANCELLED")] == history(await buyer(HISTORY))
    finally:
        await conn.execute("SELECT pg_wal_replay_resume()")
        await conn.close()


async def test_buying_and_history_go_on_when_the_replica_is_down(
    replicated: tuple[Replica, ApiProcess], make_product, email: str, wait_persisted: Any
) -> None:
    """With the replica stopped, placeOrder and checkout succeed and the history comes from the primary."""
    replica, server = replicated
    buyer = await Api(server.graphql_url).register(email)
    product = await make_product(stock=5)
    replica.stop("immediate")
    try:
        placed = (await buyer(PLACE, l=[{"productId": product["id"], "quantity": 1}], k=unique("k")))["placeOrder"]
        assert [] == (await buyer(ADD, p=product["id"], q=1))["cartAddLine"]["errors"]
        checked_out = (await buyer(CHECKOUT, k=unique("k")))["checkout"]
        assert ([], [], "PENDING", "PENDING") == (
            placed["errors"], checked_out["errors"], placed["order"]["status"], checked_out["order"]["status"])
        ids = [placed["order"]["id"], checked_out["order"]["id"]]
        await wait_persisted(ids)
        assert sorted(ids) == sorted(i for i, _ in history(await buyer(HISTORY)))
        assert [{"node": {"id": product["id"]}}] == (await buyer(SEARCH, s=product["sku"]))["products"]["edges"]
    finally:
        replica.start()
