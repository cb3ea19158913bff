"""Every script call keeps its keys (and the sharded channels it publishes on) in one hash slot.

A Redis or Valkey Cluster refuses a script whose keys hash to different slots, and with `#!lua`
also a sharded channel of another slot (checked on Valkey 9.1). Standalone Redis accepts both, so
nothing else in the suite would notice a script that breaks cluster mode. This test runs a
representative flow in the test process against the real server (sign-in, guest session, carts,
merge, write-behind, orders placed and checked out, a counter rebuilt, persistence, a payment, a
cancellation, restocks, the reconciler) and records every call at the one place scripts are sent.

The one-node calls whose keys span slots are listed in CROSSING with the steps a cluster runs
instead; the flow runs those steps too, and each of them must stay on one slot. The test fails when
a listed script no longer crosses, so the list stays true.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.crc import key_slot

from db import buckets, keys
from db.backends import Backends
from db.carts import CartStore, CartTTLs, customer_owner, flush_dirty, guest_owner
from db.drop_line import customer_shopper
from db.drops import NewDrop
from db.enums import CancelReason
from db.errors import OutOfStock
from db.order_lifecycle import apply_queued_payments, cancel_order
from db.order_persistence import persist_every_queue
from db.order_records import new_order_id
from db.order_transitions import OrderRef
from db.orders import Orders
from db.reservation import undo_stale
from db.scripts import CheckoutCart, OrderRequest, ReserveLine, Scripts, script_names
from db.stock import reconcile
from server.webhooks import receive, sign
from tests.conftest import unique
from tests.server.test_webhooks import SECRET

# One call on one node, whose keys span slots; a cluster runs the same Lua as steps of one slot each,
# which the flow below exercises too.
CROSSING = {
    "order_reserve": "a cluster runs order_begin, stock_take per product, order_commit (db.reservation)",
    "order_status": "a cluster runs stock_release per product, then order_mirror (Scripts, in steps)",
    "orders_persisted": "a cluster runs stock_unhold per product, then the bucket's part alone (Scripts, in steps)",
    "cart_merge": "a cluster runs cart_merge_in on the customer's bucket, then cart_empty on the guest's",
}


@dataclass(frozen=True)
class Call:
    script: str
    keys: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def slots(self) -> set[int]:
        return {key_slot(name.encode()) for name in (*self.keys, *self.channels)}


def recorder(scripts: Scripts, calls: list[Call]) -> Any:
    sent = scripts._call

    async def record(name: str, keys_: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        # Channels travel as arguments; every channel name starts with "events:" (db.keys).
        channels = tuple(a for a in args if isinstance(a, str) and a.startswith("events:"))
        calls.append(Call(name, tuple(keys_), channels))
        return await sent(name, keys_, args, client)

    return record


async def representative_flow(state: Any, make_product: Any, redis: Any, stepped_backends: Backends) -> None:
    a, b = await make_product(stock=50), await make_product(stock=50)
    pa, pb = int(a["id"]), int(b["id"])
    email, password = f"{unique('slots')}@example.com", "correct horse battery"
    customer = await state.accounts.create_customer(email, password)
    cid = customer.id
    await state.accounts.authenticate(email, password, client="198.51.100.7")  # ratelimit_take, give_back
    # A guest session in another bucket than the customer's, as most are: the merge then crosses.
    sid = await state.accounts.start_session("198.51.100.7")
    while buckets.of_session(sid) == buckets.of_customer(cid):
        sid = await state.accounts.start_session("198.51.100.7")
    guest, mine = guest_owner(sid), customer_owner(cid)

    await state.carts.change(guest, "add", pa, 2)  # cart_restore, cart_change
    await state.carts.change(mine, "add", pb, 1)
    await state.carts.merge(guest, mine, "MERGE")
    await flush_dirty(state.backends, CartTTLs(86400, 86400))  # cart_flushed

    await redis.delete(keys.stock(pa))  # the next order rebuilds the counter (stock_rebuild)
    one = await state.orders.reserve(cid, [(pa, 1)], unique("k"))  # allowance_load, order_reserve
    two = await state.orders.reserve(cid, [(pa, 1), (pb, 2)], unique("k"))
    cart = await state.carts.get(mine)
    await state.orders.reserve(cid, sorted(cart.lines.items()), unique("k"),
                               CheckoutCart(mine, cart.version, state.carts.ttl_for(mine)))
    await state.orders.list_for_customer(cid, 10, None)  # orders_read
    await persist_every_queue(state.backends, 500)  # orders_read, orders_persisted

    body = json.dumps({"id": unique("evt_"), "type": "payment.succeeded", "created": int(time.time()),
                       "data": {"order_id": two.order.id, "currency": "USD",
                                "amount_cents": two.order.total_cents}}).encode()
    assert 202 == (await receive(state, SECRET, body, sign(SECRET, body)))[0]  # payment_queue
    await apply_queued_payments(state.backends, 500)  # order_status (PAID)
    await cancel_order(state.backends, OrderRef(cid, one.order.id), CancelReason.CUSTOMER)  # order_status

    # Two restocks inside one window: the second figure is owed and flushed (stock_adjust, stock_flush).
    await state.catalog.adjust_stock(pb, 3)
    await state.catalog.adjust_stock(pb, 4)
    await state.backends.scripts.owed_stock.settle()
    await state.backends.scripts.stock_flush(pb)  # as the ticker does, whether or not the second was owed
    await reconcile(state.backends)  # stock_reconcile

    # A drop on a product of its own: its line advanced until the customer's turn, a pass taken and
    # given back after a refusal, taken again and spent on an order, then the end.
    pd = int((await make_product(stock=5))["id"])
    drop = await state.drops.create(NewDrop(unique("drop"), datetime.now(UTC), (pd,), 1000.0, 10, 60))  # drop_setup
    shopper = customer_shopper(cid)
    await state.drop_line.join(drop, shopper, "198.51.100.7")  # drop_join
    deadline = time.monotonic() + 10
    while (await state.drop_line.advance(drop, shopper))[1].pass_expires_ms is None:  # drop_advance
        assert time.monotonic() < deadline, "the customer's turn never came"
        await asyncio.sleep(0.01)
    with pytest.raises(OutOfStock):  # drop_pass_take, drop_pass_return
        await state.orders.reserve(cid, [(pd, 6)], unique("k"), shoppers=[shopper])
    await state.orders.reserve(cid, [(pd, 1)], unique("k"), shoppers=[shopper])  # drop_pass_spend
    await state.drops.end(drop.id)  # drop_end

    # The same changes in steps, as on a cluster (db.reservation, Scripts in steps): each step on one slot.
    stepped = Orders(stepped_backends, state.stock, 900, line=state.drop_line, in_steps=True)
    three = await stepped.reserve(cid, [(pa, 1), (pb, 1)], unique("k"))  # order_begin, stock_take, order_commit
    with pytest.raises(OutOfStock):  # stock_untake, order_abandon
        await stepped.reserve(cid, [(pa, 1), (pb, 999)], unique("k"))
    await persist_every_queue(stepped_backends, 500)  # stock_unhold, orders_persisted
    # stock_release, order_mirror
    await cancel_order(stepped_backends, OrderRef(cid, three.order.id), CancelReason.CUSTOMER)
    carts = CartStore(stepped_backends, CartTTLs(86400, 86400))
    await carts.change(guest, "add", pb, 1)
    await carts.merge(guest, mine, "MERGE")  # cart_merge_in, cart_empty
    now_ms = int(time.time() * 1000)
    await state.backends.scripts.order_begin(
        OrderRequest(customer_id=cid, order_id=new_order_id(cid), idempotency_key=unique("k"), fingerprint="f",
                     lines=[ReserveLine(pa, 1)], now_ms=now_ms, expires_ms=now_ms, idempotency_ttl_seconds=60,
                     allowance_ttl_seconds=60, persist_flag_ms=5000, max_total_cents=1),
        deadline_ms=0, lock_ttl_seconds=5, note_ttl_seconds=60)
    await undo_stale(redis, state.backends.scripts)  # orders_stale


async def test_every_script_call_stays_on_one_slot(state, make_product, redis, monkeypatch) -> None:
    """No script call of the flow spans slots but the listed ones, and each listed one still does."""
    calls: list[Call] = []
    monkeypatch.setattr(state.backends.scripts, "_call", recorder(state.backends.scripts, calls))
    stepped = Scripts(state.redis, in_steps=True)
    monkeypatch.setattr(stepped, "_call", recorder(stepped, calls))
    stepped_backends = Backends(state.redis, stepped, state.backends.sessions)
    await asyncio.wait_for(representative_flow(state, make_product, redis, stepped_backends), 120)

    made = {call.script for call in calls}
    assert set(script_names()) == made, "the flow must exercise every script"
    crossing = {call.script for call in calls if len(call.slots) > 1}
    unexpected = sorted({(c.script, c.keys, c.channels) for c in calls
                         if len(c.slots) > 1 and c.script not in CROSSING})
    assert [] == unexpected
    assert sorted(CROSSING) == sorted(crossing), "a listed script no longer crosses slots: take it off CROSSING"


def test_a_customers_keys_and_orders_share_one_slot() -> None:
    """The keys a customer's order step uses, and its order's, hash to the bucket's slot."""
    for customer_id in (1, 17, 12345):
        order_id = buckets.new_order_id(buckets.of_customer(customer_id))
        names = [keys.allowance(customer_id), keys.idempotency(customer_id, "k"), keys.orders_inflight(customer_id),
                 keys.order(order_id), keys.order_released(order_id), keys.order_channel(order_id),
                 keys.orders_to_persist_of(order_id), keys.persist_pending(buckets.of_customer(customer_id)),
                 keys.cart(customer_owner(customer_id)), keys.carts_dirty_of(customer_owner(customer_id))]
        assert 1 == len({key_slot(n.encode()) for n in names}), names
    product = [keys.stock(42), keys.stock_held(42), keys.stock_epoch(42), keys.stock_drift(42),
               keys.stock_published(42), keys.product_info(42), keys.stock_channel(42)]
    assert 1 == len({key_slot(n.encode()) for n in product})


def test_order_ids_stay_uuids_sorted_by_time_and_old_ids_keep_their_keys() -> None:
    """A new id is a canonical UUID carrying its bucket, later ids sort later; an id made before
    buckets (UUIDv7) still names the keys it was written under."""
    from uuid6 import uuid7

    from db.order_records import canonical_order_id

    first = buckets.new_order_id(5)
    later = buckets.new_order_id(200)
    while later[:13] == first[:13]:  # the same millisecond: ids of one ms sort by their random part
        later = buckets.new_order_id(200)
    assert (first, later) == (canonical_order_id(first), canonical_order_id(later))
    assert (5, 200) == (buckets.of_order(first), buckets.of_order(later))
    assert first < later
    old = str(uuid7())
    assert (None, f"order:{old}", "orders:topersist", f"events:order:{old}") == (
        buckets.of_order(old), keys.order(old), keys.orders_to_persist_of(old), keys.order_channel(old))
