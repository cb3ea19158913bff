"""Subscriptions over graphql-transport-ws: authorization, first events, live changes, fan-out, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from redis.asyncio.cluster import RedisCluster

from db import keys
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import CANCEL, place
from tests.server.test_webhooks import event, post
from tests.stack import Stack, eventually

WATCHERS = 500
ORDER_STATUS = "subscription($id: ID!) { orderStatus(orderId: $id) { orderId status cancelReason at } }"
STOCK = "subscription($id: ID!) { productStock(productId: $id) { productId available at } }"


def ws_url(stack: Stack) -> str:
    return stack.graphql_url.replace("http://", "ws://")


@contextlib.asynccontextmanager
async def subscribe(stack: Stack, query: str, token: str | None = None, **variables: Any
                    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    transport = WebsocketsTransport(
        url=ws_url(stack),
        init_payload={"Authorization": f"Bearer {token}"} if token else {},
        close_timeout=1,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        yield session.subscribe(GraphQLRequest(query, variable_values=variables))


async def next_event(stream: AsyncIterator[dict[str, Any]], timeout: float = 15) -> dict[str, Any]:
    return dict(await asyncio.wait_for(anext(stream), timeout))


@pytest.fixture
async def buyer(api: Api) -> Api:
    return await api.register(f"{unique('subscriber')}@example.com")


async def test_order_status_starts_with_the_current_status_then_turns_paid(stack: Stack, buyer: Api,
                                                                           make_product) -> None:
    """The owner first gets PENDING, then PAID when the webhook arrives, then the stream completes."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        first = await next_event(stream)
        assert (order["id"], "PENDING", None) == (first["orderStatus"]["orderId"], first["orderStatus"]["status"],
                                                  first["orderStatus"]["cancelReason"])
        assert 202 == (await post(stack, event(order))).status_code
        paid = await next_event(stream)
        assert "PAID" == paid["orderStatus"]["status"]
        with pytest.raises(StopAsyncIteration):
            await next_event(stream)


async def test_order_status_reports_cancellation_after_expiry(stack: Stack, buyer: Api, make_product, pg,
                                                              wait_persisted) -> None:
    """An order that expires while watched is pushed as CANCELLED with reason EXPIRED."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    await wait_persisted([order["id"]])
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        assert "PENDING" == (await next_event(stream))["orderStatus"]["status"]
        await pg.execute("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
                         order["id"])
        cancelled = (await next_event(stream, timeout=20))["orderStatus"]
        assert ("CANCELLED", "EXPIRED") == (cancelled["status"], cancelled["cancelReason"])


async def test_a_final_order_sends_one_event_and_completes(stack: Stack, buyer: Api, make_product) -> None:
    """Subscribing to an order already cancelled gives its status once, then completes."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    await buyer(CANCEL, id=order["id"])
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        only = (await next_event(stream))["orderStatus"]
        assert ("CANCELLED", "CUSTOMER") == (only["status"], only["cancelReason"])
        with pytest.raises(StopAsyncIteration):
            await next_event(stream)


async def test_only_the_owner_may_watch_an_order(stack: Stack, buyer: Api, api: Api, make_product) -> None:
    """Guests and other customers get an error and no status."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    other = await api.register(f"{unique('nosy')}@example.com")
    for token in (None, other.token, "forged-token"):
        async with subscribe(stack, ORDER_STATUS, token, id=order["id"]) as stream:
            with pytest.raises(TransportQueryError) as refused:
                await next_event(stream)
            assert "data" not in str(refused.value).lower() or "PENDING" not in str(refused.value)


async def test_staff_may_watch_any_order(stack: Stack, buyer: Api, staff: Api, make_product) -> None:
    """Staff can follow a customer's order."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    async with subscribe(stack, ORDER_STATUS, staff.token, id=order["id"]) as stream:
        assert "PENDING" == (await next_event(stream))["orderStatus"]["status"]


async def test_stock_starts_with_available_and_follows_sales(stack: Stack, buyer: Api, make_product) -> None:
    """productStock sends the current figure, then each change; anyone may subscribe."""
    product = await make_product(stock=10)
    async with subscribe(stack, STOCK, None, id=product["id"]) as stream:
        assert 10 == (await next_event(stream))["productStock"]["available"]
        await place(buyer, (product, 3))
        assert 7 == (await next_event(stream))["productStock"]["available"]


async def test_stock_events_are_coalesced_during_a_burst(stack: Stack, api: Api, make_product) -> None:
    """Forty sales in a burst reach a stock subscriber as a few events ending at the right figure."""
    product = await make_product(stock=100)
    buyers = await asyncio.gather(*[api.register(f"{unique('burst')}@example.com") for _ in range(8)])
    async with subscribe(stack, STOCK, None, id=product["id"]) as stream:
        assert 100 == (await next_event(stream))["productStock"]["available"]
        await asyncio.gather(*[place(buyers[i % 8], (product, 1)) for i in range(40)])
        seen: list[int] = []
        while not seen or seen[-1] != 60:
            seen.append((await next_event(stream))["productStock"]["available"])
    assert 60 == seen[-1] and len(seen) < 40
    assert seen == sorted(seen, reverse=True)


async def test_unknown_product_stock_is_an_error(stack: Stack) -> None:
    """Subscribing to a product that does not exist is an error, not an empty stream."""
    async with subscribe(stack, STOCK, None, id="987654321") as stream:
        with pytest.raises(TransportQueryError, match="no product"):
            await next_event(stream)


async def numsub(redis, channel: str) -> int:
    """Subscribers of a sharded channel (order and stock events travel on sharded pub/sub), asked of
    the node that holds it on a cluster."""
    where = {"target_nodes": redis.get_node_from_key(channel)} if isinstance(redis, RedisCluster) else {}
    return int(dict(await redis.pubsub_shardnumsub(channel, **where))[channel])


async def pubsub_connections(redis) -> int:
    """Connections subscribed to anything, on every node of a cluster."""
    if isinstance(redis, RedisCluster):
        lists = [await redis.client_list(target_nodes=node) for node in redis.get_primaries()]
    else:
        lists = [await redis.client_list()]
    return sum(1 for clients in lists for c in clients if "P" in c.get("flags", "") or int(c.get("sub", 0) or 0) > 0)


async def raw_subscription(stack: Stack, token: str, query: str, variables: dict[str, Any]) -> Any:
    """A bare graphql-transport-ws connection: gql's client costs ~0.2 s a connection, too slow for 500."""
    ws = await websockets.connect(ws_url(stack), subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert "connection_ack" == json.loads(await ws.recv())["type"]
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}))
    return ws


async def next_payload(ws: Any, timeout: float = 60) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "next":
            assert message["payload"].get("data"), message
            return dict(message["payload"]["data"])
        if message["type"] not in ("ping", "pong"):
            raise AssertionError(f"unexpected message {message}")


async def test_500_subscribers_share_one_connection_and_all_see_the_change(stack: Stack, buyer: Api,
                                                                           make_product, redis) -> None:
    """Five hundred subscribers to one order all get PAID; Redis sees one subscription for them."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    channel = keys.order_channel(order["id"])
    before = await pubsub_connections(redis)
    sockets = await asyncio.gather(*[
        raw_subscription(stack, str(buyer.token), ORDER_STATUS, {"id": order["id"]}) for _ in range(WATCHERS)])
    try:
        firsts = await asyncio.gather(*[next_payload(ws) for ws in sockets])
        assert {"PENDING"} == {f["orderStatus"]["status"] for f in firsts}
        assert 1 == await numsub(redis, channel)
        # On a cluster the process may open its first connection to the node holding the channel.
        assert 0 <= await pubsub_connections(redis) - before <= (1 if stack.cluster else 0)
        assert 202 == (await post(stack, event(order))).status_code
        changes = await asyncio.gather(*[next_payload(ws) for ws in sockets])
    finally:
        await asyncio.gather(*[ws.close() for ws in sockets], return_exceptions=True)
    assert ["PAID"] * WATCHERS == [c["orderStatus"]["status"] for c in changes]


async def test_disconnected_subscribers_are_cleaned_up(stack: Stack, make_product, redis) -> None:
    """When the last subscriber of a channel leaves, the server unsubscribes from Redis."""
    product = await make_product()
    channel = keys.stock_channel(product["id"])
    async with subscribe(stack, STOCK, None, id=product["id"]) as stream:
        await next_event(stream)
        assert 1 == await numsub(redis, channel)

    async def gone() -> bool:
        return await numsub(redis, channel) == 0

    await eventually(gone, timeout=10, message="the server to unsubscribe")


async def test_refusals_carry_the_codes_of_user_errors(stack: Stack, buyer: Api, api: Api, make_product) -> None:
    """A guest is told NOT_AUTHENTICATED, another customer ORDER_NOT_FOUND, in extensions.code."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    other = await api.register(f"{unique('nosy')}@example.com")
    codes = []
    for token in (None, other.token):
        async with subscribe(stack, ORDER_STATUS, token, id=order["id"]) as stream:
            with pytest.raises(TransportQueryError) as refused:
                await next_event(stream)
            assert refused.value.errors is not None
            codes.append(refused.value.errors[0]["extensions"]["code"])
    assert ["NOT_AUTHENTICATED", "ORDER_NOT_FOUND"] == codes


async def test_logout_ends_an_open_order_subscription(stack: Stack, api: Api, make_product) -> None:
    """After its token is logged out, an orderStatus stream ends with NOT_AUTHENTICATED."""
    buyer = await api.register(f"{unique('leaver')}@example.com")
    order = (await place(buyer, (await make_product(), 1)))["order"]
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        assert "PENDING" == (await next_event(stream))["orderStatus"]["status"]
        assert {"logout": True} == await buyer("mutation { logout }")
        with pytest.raises(TransportQueryError) as ended:
            await next_event(stream)
    assert ended.value.errors is not None
    assert "NOT_AUTHENTICATED" == ended.value.errors[0]["extensions"]["code"]


async def test_live_status_time_equals_the_stored_one(stack: Stack, buyer: Api, make_product,
                                                      wait_persisted) -> None:
    """The `at` of a live PAID event is the one a later subscription returns for the same change."""
    order = (await place(buyer, (await make_product(), 1)))["order"]
    await wait_persisted([order["id"]])
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        await next_event(stream)
        assert 202 == (await post(stack, event(order))).status_code
        live = (await next_event(stream))["orderStatus"]
    async with subscribe(stack, ORDER_STATUS, buyer.token, id=order["id"]) as stream:
        stored = (await next_event(stream))["orderStatus"]
    assert ("PAID", live["at"]) == (stored["status"], stored["at"])


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_socket_that_never_initialises_is_closed(stack: Stack, protocol: str) -> None:
    """Both WebSocket protocols close a connection without connection_init after WS_INIT_TIMEOUT_SECONDS."""
    server = next((s for s in stack.extra_servers if s.name == "server-ws-timeout"), None)
    if server is None:
        server = stack.start_extra_server("server-ws-timeout", WS_INIT_TIMEOUT_SECONDS="1")
    url = server.graphql_url.replace("http://", "ws://")
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol(protocol)]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
    assert (4408, "Connection initialisation timeout") == (closed.value.rcvd.code, closed.value.rcvd.reason)
