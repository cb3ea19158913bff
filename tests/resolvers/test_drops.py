"""Drops: staff set them up; shoppers join a fair line, are admitted by policy and by the units
left, buy with a single-use pass, and follow their place live."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from db import keys
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import CANCEL, available
from tests.resolvers.test_subscriptions import next_event, subscribe
from tests.stack import Stack, eventually

DROP = "drop { id name startsAt admitPerSecond maxActive passTtlSeconds endedAt unitsLeft products { id } }"
CREATE = f"mutation($i: DropInput!) {{ dropCreate(input: $i) {{ {DROP} errors {{ code field productId }} }} }}"
END = f"mutation($id: ID!) {{ dropEnd(id: $id) {{ {DROP} errors {{ code }} }} }}"
LINE_FIELDS = "dropId status position ahead estimatedWaitSeconds unitsLeft lineLength passExpiresAt"
JOIN = f"mutation($d: ID!) {{ joinDrop(dropId: $d) {{ line {{ {LINE_FIELDS} }} errors {{ code message }} }} }}"
LINE = f"query($d: ID!) {{ dropLine(dropId: $d) {{ {LINE_FIELDS} }} }}"
SUBSCRIBE_LINE = f"subscription($d: ID!) {{ dropLine(dropId: $d) {{ {LINE_FIELDS} }} }}"
PLACE_ERRORS = "mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) " \
               "{ order { id } errors { code productId position } } }"


def _iso(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


async def create_drop(staff: Api, products: list[dict[str, Any]], starts_in: float = 2.0,
                      **policy: Any) -> dict[str, Any]:
    data = await staff(CREATE, i={"name": unique("Drop "), "startsAt": _iso(starts_in),
                                  "productIds": [p["id"] for p in products], **policy})
    assert [] == data["dropCreate"]["errors"], data
    return dict(data["dropCreate"]["drop"])


async def join(client: Api, drop: dict[str, Any]) -> dict[str, Any]:
    data = (await client(JOIN, d=drop["id"]))["joinDrop"]
    assert [] == data["errors"], data
    return dict(data["line"])


async def line(client: Api, drop: dict[str, Any]) -> dict[str, Any]:
    return dict((await client(LINE, d=drop["id"]))["dropLine"])


async def buy(client: Api, product: dict[str, Any], quantity: int = 1) -> dict[str, Any]:
    return dict((await client(PLACE_ERRORS, l=[{"productId": product["id"], "quantity": quantity}],
                              k=unique("k")))["placeOrder"])


async def wait_status(client: Api, drop: dict[str, Any], *statuses: str, timeout: float = 20) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        current = await line(client, drop)
        return current if current["status"] in statuses else None

    return dict(await eventually(reached, timeout=timeout, message=f"line status in {statuses}"))


async def wait_started(drop: dict[str, Any]) -> None:
    starts = datetime.fromisoformat(drop["startsAt"]).timestamp()
    await eventually(lambda: _true_after(starts), timeout=30, message="the drop's start")


async def _true_after(instant: float) -> bool:
    return time.time() >= instant + 0.05


async def customers(api: Api, n: int) -> list[Api]:
    return list(await asyncio.gather(*[api.register(f"{unique('dropper')}@example.com") for _ in range(n)]))


# Staff and bad input ------------------------------------------------------------------------------


async def test_only_staff_create_or_end_drops(api: Api, make_product) -> None:
    """A guest is NOT_AUTHENTICATED, a customer FORBIDDEN; nothing is created."""
    product = await make_product()
    customer = await api.register(f"{unique('c')}@example.com")
    guest = await api.start_session()
    variables = {"name": "x", "startsAt": _iso(60), "productIds": [product["id"]], "maxActive": 5}
    codes = [(await who(CREATE, i=variables))["dropCreate"]["errors"][0]["code"] for who in (guest, customer)]
    ended = (await customer(END, id="1"))["dropEnd"]["errors"][0]["code"]
    assert (["NOT_AUTHENTICATED", "FORBIDDEN"], "FORBIDDEN") == (codes, ended)
    assert None is (await api("query($id: ID!) { product(id: $id) { drop { id } } }", id=product["id"]))[
        "product"]["drop"]


async def test_bad_drops_are_refused_with_typed_errors(staff: Api, make_product) -> None:
    """Unknown product, no policy, a start in the past, a product already in a live drop."""
    product = await make_product()
    taken = await make_product()
    await create_drop(staff, [taken], starts_in=60, maxActive=3)

    async def refusal(**fields: Any) -> dict[str, Any]:
        variables = {"name": "bad", "startsAt": _iso(60), "productIds": [product["id"]], "maxActive": 3, **fields}
        data = (await staff(CREATE, i=variables))["dropCreate"]
        assert data["drop"] is None
        return dict(data["errors"][0])

    assert {"code": "PRODUCT_NOT_FOUND", "field": "input.productIds[1]", "productId": "999999999"} == await refusal(
        productIds=[product["id"], "999999999"])
    assert ("INVALID_INPUT", "input.admitPerSecond") == tuple(
        (await refusal(maxActive=None)).values())[:2]
    assert ("INVALID_INPUT", "input.startsAt") == tuple((await refusal(startsAt=_iso(-5))).values())[:2]
    assert {"code": "INVALID_INPUT", "field": "input.productIds", "productId": taken["id"]} == await refusal(
        productIds=[product["id"], taken["id"]])
    assert ("INVALID_INPUT", "input.passTtlSeconds") == tuple((await refusal(passTtlSeconds=1)).values())[:2]


async def test_a_drop_is_read_back_and_named_by_its_products_until_it_ends(api: Api, staff: Api,
                                                                           make_product) -> None:
    """drop(id) and Product.drop show the drop; after dropEnd the product is in none and sells freely."""
    product = await make_product(stock=3)
    drop = await create_drop(staff, [product], starts_in=60, admitPerSecond=2.5, passTtlSeconds=30)
    read = (await api(f"query($id: ID!) {{ {DROP.replace('drop {', 'drop(id: $id) {', 1)} }}", id=drop["id"]))
    assert drop == read["drop"]
    assert (2.5, None, 30, 3, [{"id": product["id"]}]) == (
        drop["admitPerSecond"], drop["maxActive"], drop["passTtlSeconds"], drop["unitsLeft"], drop["products"])
    named = await api("query($id: ID!) { product(id: $id) { drop { id } } }", id=product["id"])
    assert {"id": drop["id"]} == named["product"]["drop"]
    buyer = await api.register(f"{unique('c')}@example.com")
    assert "NOT_YOUR_TURN" == (await buy(buyer, product))["errors"][0]["code"]
    ended = (await staff(END, id=drop["id"]))["dropEnd"]["drop"]
    assert ended["endedAt"] is not None
    assert [] == (await buy(buyer, product))["errors"]
    assert "ENDED" == (await line(buyer, drop))["status"]


# Joining --------------------------------------------------------------------------------------


async def test_joining_again_keeps_the_place(api: Api, staff: Api, make_product) -> None:
    """A customer and a guest each get one place; joining again (a reload) returns the same place."""
    product = await make_product(stock=10)
    first = await api.register(f"{unique('c')}@example.com")
    guest = await api.start_session()
    drop = await create_drop(staff, [product], starts_in=2, maxActive=1)
    await join(first, drop)
    await join(guest, drop)
    await wait_started(drop)
    again = [await join(guest, drop) for _ in range(3)]
    assert 2 == again[-1]["lineLength"]
    assert 1 == len({(a["status"], a["position"]) for a in again})
    statuses = sorted([(await line(first, drop))["status"], again[-1]["status"]])
    assert ["ADMITTED", "WAITING"] == statuses


async def test_early_joiners_are_shuffled_and_later_ones_keep_arrival_order(
        api: Api, staff: Api, make_product, redis) -> None:
    """Everyone who joined before the start is admitted in a random order; after the start, in order of arrival."""
    product = await make_product(stock=1000)
    early_guests = list(await asyncio.gather(*[api.start_session() for _ in range(40)]))
    drop = await create_drop(staff, [product], starts_in=10, admitPerSecond=1000)
    for guest in early_guests:  # one after the other: the join order is known
        assert "WAITING" == (await join(guest, drop))["status"]
    await wait_started(drop)
    late_guests = [await api.start_session() for _ in range(10)]
    for guest in late_guests:
        await join(guest, drop)
    for guest in early_guests + late_guests:
        assert "ADMITTED" == (await wait_status(guest, drop, "ADMITTED"))["status"]
    admitted = list(await redis.zrange(keys.drop_line(int(drop["id"])), 0, -1))
    early = [f"s:{g.session_id}" for g in early_guests]
    late = [f"s:{g.session_id}" for g in late_guests]
    assert (sorted(early), late) == (sorted(admitted[:40]), admitted[40:])
    assert early != admitted[:40]


async def test_a_client_address_gets_a_bounded_number_of_places(state, staff: Api, make_product) -> None:
    """New places count against the client's budget (a bot's many sessions get few places); rejoining is free."""
    from db.drop_line import DropLine, guest_shopper
    from db.errors import RateLimited

    product = await make_product()
    drop = await create_drop(staff, [product], starts_in=60, maxActive=5)
    record = await state.drops.get(int(drop["id"]))
    bounded = DropLine(state.backends, state.drops, state.stock, joins_per_minute=3)
    client = unique("bot-")
    sessions = [await state.accounts.start_session(unique("starter-")) for _ in range(4)]
    made = [await bounded.join(record, guest_shopper(sid), client) for sid in sessions[:3]]
    again = await bounded.join(record, guest_shopper(sessions[0]), client)
    with pytest.raises(RateLimited):
        await bounded.join(record, guest_shopper(sessions[3]), client)
    assert ([True, True, True], False) == (made, again)


# Passes ---------------------------------------------------------------------------------------


async def test_a_pass_is_needed_bound_to_its_owner_used_once_and_kept_on_refusal(
        api: Api, staff: Api, make_product) -> None:
    """Only the admitted shopper may buy; OUT_OF_STOCK keeps the pass; an order uses it up; the next is admitted."""
    product = await make_product(stock=5)
    other = await make_product(stock=5)
    a, b = await customers(api, 2)
    drop = await create_drop(staff, [product], starts_in=4, maxActive=1, passTtlSeconds=60)
    await join(a, drop)
    await join(b, drop)
    early = await buy(a, product)
    assert ("NOT_YOUR_TURN", product["id"], None) == tuple(early["errors"][0].values())
    await wait_started(drop)
    first = await wait_status(a, drop, "ADMITTED", "WAITING")
    holder, waiter = (a, b) if first["status"] == "ADMITTED" else (b, a)
    await wait_status(holder, drop, "ADMITTED")
    refused = await buy(waiter, product)
    assert ("NOT_YOUR_TURN", product["id"], 1) == tuple(refused["errors"][0].values())
    assert [] == (await buy(waiter, other))["errors"]  # outside the drop nothing changes
    assert "OUT_OF_STOCK" == (await buy(holder, product, 6))["errors"][0]["code"]
    assert "ADMITTED" == (await line(holder, drop))["status"]
    assert [] == (await buy(holder, product, 2))["errors"]
    assert "NOT_YOUR_TURN" == (await buy(holder, product))["errors"][0]["code"]
    assert "PURCHASED" == (await line(holder, drop))["status"]
    assert "ADMITTED" == (await wait_status(waiter, drop, "ADMITTED"))["status"]


async def test_a_guest_pass_buys_once_the_guest_signs_in_with_the_same_session(api: Api, staff: Api,
                                                                              make_product) -> None:
    """A pass is bound to the guest session that joined: the customer who signs in from it may use it, nobody else."""
    product = await make_product(stock=5)
    guest = await api.start_session()
    stranger = await api.register(f"{unique('c')}@example.com")
    drop = await create_drop(staff, [product], starts_in=1.5, maxActive=5, passTtlSeconds=60)
    await join(guest, drop)
    await wait_started(drop)
    await wait_status(guest, drop, "ADMITTED")
    signed_in = await guest.register(f"{unique('c')}@example.com")
    assert signed_in.session_id == guest.session_id
    # Signed in, the shopper still reads and keeps the place the session took: no second place.
    assert "ADMITTED" == (await line(signed_in, drop))["status"]
    again = await join(signed_in, drop)
    assert ("ADMITTED", 1) == (again["status"], again["lineLength"])
    refused = await buy(stranger, product)
    assert ("NOT_YOUR_TURN", None) == (refused["errors"][0]["code"], refused["errors"][0]["position"])
    assert [] == (await buy(signed_in, product))["errors"]
    assert "PURCHASED" == (await line(guest, drop))["status"]


async def test_a_pass_not_used_in_time_returns_to_the_budget(api: Api, staff: Api, make_product) -> None:
    """A pass that runs out is PASS_EXPIRED and the next shopper is admitted in its place."""
    product = await make_product(stock=5)
    a, b = await customers(api, 2)
    drop = await create_drop(staff, [product], starts_in=1.5, maxActive=1, passTtlSeconds=5)
    await join(a, drop)
    await wait_started(drop)
    await join(b, drop)
    admitted = await wait_status(a, drop, "ADMITTED")
    assert admitted["passExpiresAt"] is not None
    assert "WAITING" == (await line(b, drop))["status"]
    assert "PASS_EXPIRED" == (await wait_status(a, drop, "PASS_EXPIRED", timeout=15))["status"]
    assert "ADMITTED" == (await wait_status(b, drop, "ADMITTED"))["status"]
    assert "NOT_YOUR_TURN" == (await buy(a, product))["errors"][0]["code"]


# Stock-aware ----------------------------------------------------------------------------------


async def test_shoppers_who_cannot_be_reached_are_told_and_the_line_moves_when_units_return(
        api: Api, staff: Api, make_product) -> None:
    """Two units: two passes go out, the rest hear LIKELY_SOLD_OUT, then SOLD_OUT; a cancellation moves the line."""
    product, shoppers, _, statuses = await _two_units_two_passes(api, staff, make_product, 5, starts_in=3)
    now = await statuses()
    assert (2, 3) == (now.count("ADMITTED"), now.count("LIKELY_SOLD_OUT"))
    holders = [s for s, st in zip(shoppers, now, strict=True) if st == "ADMITTED"]
    orders = [await buy(h, product) for h in holders]
    assert [[], []] == [o["errors"] for o in orders]
    await eventually(lambda: _has(statuses, "SOLD_OUT", 3), timeout=5, message="SOLD_OUT for the waiting")
    cancelled = await holders[0](CANCEL, id=orders[0]["order"]["id"])
    assert [] == cancelled["cancelOrder"]["errors"]
    await eventually(lambda: _has(statuses, "ADMITTED", 1), timeout=15, message="the line to move again")


async def test_a_purchase_made_while_the_line_moves_is_not_offered_again(state, api: Api, staff: Api,
                                                                         make_product) -> None:
    """An advance working from a units figure read just before a pass holder bought (another process'
    tick, a join) admits nobody for those units: never more passes out than units."""
    product, shoppers, drop, statuses = await _two_units_two_passes(api, staff, make_product, 4, starts_in=2)
    holder = next(s for s, st in zip(shoppers, await statuses(), strict=True) if st == "ADMITTED")
    record = await state.drop_line.drop(int(drop["id"]))
    used_before = int(await state.backends.redis.hget(keys.drop_state(record.id), "used") or 0)
    units_before = await state.drop_line.units_left(record)
    assert [] == (await buy(holder, product))["errors"]
    advanced = await state.backends.scripts.drop_advance(record.id, units_left=units_before, used_before=used_before,
                                                         publish_interval_ms=0, shopper=None, max_admit=100)
    assert (2, 1, 1) == (advanced.admitted, advanced.outstanding, advanced.used)
    assert ["ADMITTED", "PURCHASED"] == sorted(st for st in await statuses() if st in ("ADMITTED", "PURCHASED"))


async def _two_units_two_passes(api: Api, staff: Api, make_product: Any, shoppers_count: int, starts_in: float
                                ) -> tuple[dict[str, Any], list[Api], dict[str, Any], Any]:
    """A drop of a product with two units, `shoppers_count` customers in its line, once it has started
    and handed out its two passes; and a function reading every shopper's status."""
    product = await make_product(stock=2)
    shoppers = await customers(api, shoppers_count)
    drop = await create_drop(staff, [product], starts_in=starts_in, maxActive=10, passTtlSeconds=60)
    for shopper in shoppers:
        await join(shopper, drop)
    await wait_started(drop)

    async def statuses() -> list[str]:
        return [(await line(s, drop))["status"] for s in shoppers]

    await eventually(lambda: _has(statuses, "ADMITTED", 2), timeout=15, message="two passes")
    return product, shoppers, drop, statuses


async def _has(statuses: Any, status: str, count: int) -> bool:
    return (await statuses()).count(status) == count


async def test_concurrent_buyers_never_oversell_a_drop(api: Api, staff: Api, make_product) -> None:
    """Thirty shoppers racing for five units through the line: five orders, stock 0, no more."""
    product = await make_product(stock=5)
    shoppers = await customers(api, 30)
    drop = await create_drop(staff, [product], starts_in=3, admitPerSecond=50, maxActive=30, passTtlSeconds=60)
    await asyncio.gather(*[join(s, drop) for s in shoppers])
    await wait_started(drop)
    deadline = time.monotonic() + 30

    async def try_to_buy(shopper: Api) -> bool:
        while time.monotonic() < deadline:
            placed = await buy(shopper, product)
            if not placed["errors"]:
                return True
            if (await line(shopper, drop))["status"] in ("SOLD_OUT", "PASS_EXPIRED"):
                return False
            await asyncio.sleep(0.05)  # a shopper's retry pace, not synchronisation
        return False

    bought = await asyncio.gather(*[try_to_buy(s) for s in shoppers])
    assert (5, 0) == (sum(bought), await available(api, product))


# Live position --------------------------------------------------------------------------------


async def test_the_subscription_starts_with_the_place_and_follows_it(stack: Stack, api: Api, staff: Api,
                                                                    make_product) -> None:
    """First event: the place now (WAITING, no position before the start); then a falling position, then ADMITTED."""
    product = await make_product(stock=50)
    early = await customers(api, 4)
    drop = await create_drop(staff, [product], starts_in=4, admitPerSecond=1, passTtlSeconds=60)
    for shopper in early:
        await join(shopper, drop)
    async with subscribe(stack, SUBSCRIBE_LINE, early[0].token, d=drop["id"]) as stream:
        first = (await next_event(stream))["dropLine"]
        assert ("WAITING", None, 4) == (first["status"], first["position"], first["lineLength"])
    await wait_started(drop)
    late = (await customers(api, 1))[0]
    joined = await join(late, drop)
    async with subscribe(stack, SUBSCRIBE_LINE, late.token, d=drop["id"]) as stream:
        seen = [(await next_event(stream))["dropLine"]]
        while seen[-1]["status"] != "ADMITTED":
            seen.append((await next_event(stream, timeout=20))["dropLine"])
    positions = [e["position"] for e in seen if e["status"] == "WAITING"]
    assert joined["position"] >= 2 and len(positions) >= 2, seen
    assert positions == sorted(positions, reverse=True) and positions[-1] < positions[0]
    assert seen[-1]["passExpiresAt"] is not None


async def test_a_shopper_sees_only_their_own_place(api: Api, staff: Api, make_product) -> None:
    """dropLine answers for the caller alone: a shopper who did not join is NOT_IN_LINE, whoever else did."""
    product = await make_product()
    drop = await create_drop(staff, [product], starts_in=60, maxActive=1)
    a, b = await customers(api, 2)
    await join(a, drop)
    assert ("WAITING", "NOT_IN_LINE") == ((await line(a, drop))["status"], (await line(b, drop))["status"])
