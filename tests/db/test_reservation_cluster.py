"""Reserving in steps on a real Valkey Cluster: an order whose products live on other shards than its
customer is still all or nothing, idempotent and bound by the customer's limits, and a process that
dies between steps holds no unit for longer than a deadline and a sweep (db.reservation).

The steps are the scripts the API runs (db.scripts), sent through redis-py's cluster client to the
3-primary + 3-replica cluster of the embedded binary; every script starts `#!lua`, so a step that
reached past its own slot would be refused. Products and customers are chosen so that each product
and the customer's bucket are on a different primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from db import buckets, keys
from db.errors import OutOfStock, PurchaseLimitExceeded
from db.order_records import fingerprint, new_order_id
from db.reservation import reserve_in_steps, undo_stale
from db.scripts import OrderRequest, Replayed, ReservationBusy, ReservationUndone, Reserved, ReserveLine, Scripts
from db.values import as_text
from tests.stack import eventually

_ids = itertools.count(1)


def _spread(client: RedisCluster, name: Callable[[int], str], count: int, avoid: set[str], start: int) -> list[int]:
    """`count` ids whose key `name(id)` lives on primaries other than `avoid` and each other."""
    chosen: dict[str, int] = {}
    for candidate in range(start, start + 5000):
        node = client.get_node_from_key(name(candidate))
        assert node is not None
        if node.name not in avoid and node.name not in chosen:
            chosen[node.name] = candidate
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError(f"no {count} ids on distinct primaries")


async def _setup(client: RedisCluster, products: int, stock: int, limit: str = "") -> tuple[int, list[int]]:
    """A customer (allowance loaded) and `products` products each on a primary of its own, other than
    the customer's while there are primaries enough (three)."""
    base = next(_ids) * 10_000
    customer = _spread(client, keys.allowance, 1, set(), base)[0]
    home = client.get_node_from_key(keys.allowance(customer))
    assert home is not None
    pids = _spread(client, keys.stock, products, {home.name} if products < 3 else set(), base + 5000)
    await client.hset(keys.allowance(customer), "_r", "1")
    for pid in pids:
        await client.set(keys.stock(pid), stock)
        await client.set(keys.stock_held(pid), 0)
        await client.hset(keys.product_info(pid), mapping={"price": 1000, "currency": "EUR", "limit": limit})
    return customer, pids


async def _reserve(scripts: Scripts, customer: int, lines: list[tuple[int, int]], key: str,
                   order_id: str | None = None) -> Reserved | Replayed:
    return await reserve_in_steps(scripts, _order(customer, lines, key, order_id or new_order_id(customer)))


def _order(customer: int, lines: list[tuple[int, int]], key: str, order_id: str) -> OrderRequest:
    now_ms = int(time.time() * 1000)
    return OrderRequest(
        customer_id=customer, order_id=order_id, idempotency_key=key, fingerprint=fingerprint(lines, checkout=False),
        lines=[ReserveLine(p, q) for p, q in lines], now_ms=now_ms, expires_ms=now_ms + 900_000,
        idempotency_ttl_seconds=3600, allowance_ttl_seconds=3600, persist_flag_ms=5000, max_total_cents=2**31 - 1)


async def _stock(client: RedisCluster, pids: list[int]) -> list[int]:
    return [int(await client.get(keys.stock(pid))) for pid in pids]


async def _nothing_under_way(client: RedisCluster, customer: int) -> bool:
    return 0 == await client.zcard(keys.orders_reserving(buckets.of_customer(customer)))


async def test_an_order_across_three_shards_is_all_or_nothing_and_replays(client: RedisCluster) -> None:
    """Three lines on three shards, two of them not the customer's: a refusal of the last line leaves every
    counter as it was and the key free; the order then made takes each line once, and the same key
    answers the same order without taking again."""
    scripts = Scripts(client)  # type: ignore[arg-type]  # the cluster client speaks the same commands
    customer, pids = await _setup(client, 3, stock=5)
    with pytest.raises(OutOfStock):
        await _reserve(scripts, customer, [(pids[0], 2), (pids[1], 2), (pids[2], 9)], "k1")
    assert ([5, 5, 5], True) == (await _stock(client, pids), await _nothing_under_way(client, customer))
    made = await _reserve(scripts, customer, [(pids[0], 2), (pids[1], 2), (pids[2], 3)], "k1")
    assert isinstance(made, Reserved) and 7000 == made.total_cents
    again = await _reserve(scripts, customer, [(pids[0], 2), (pids[1], 2), (pids[2], 3)], "k1")
    assert isinstance(again, Replayed)
    record = await client.hgetall(keys.order(again.order_id))
    assert ("PENDING", [3, 3, 2]) == (as_text(record[b"status"]), await _stock(client, pids))
    assert again.order_id in {as_text(o) for o in await client.zrange(keys.orders_to_persist_of(again.order_id), 0, -1)}
    assert await _nothing_under_way(client, customer)


async def test_the_customers_limit_is_checked_on_their_shard_and_refusal_gives_units_back(client: RedisCluster) -> None:
    """maxPerCustomer is held in the customer's allowance, on another shard than the products: a
    second order past it is refused and its units, taken first, go back."""
    scripts = Scripts(client)  # type: ignore[arg-type]
    customer, pids = await _setup(client, 2, stock=10, limit="3")
    assert isinstance(await _reserve(scripts, customer, [(pids[0], 2), (pids[1], 3)], "a"), Reserved)
    with pytest.raises(PurchaseLimitExceeded):
        await _reserve(scripts, customer, [(pids[0], 2), (pids[1], 1)], "b")
    assert ([8, 7], True) == (await _stock(client, pids), await _nothing_under_way(client, customer))


async def test_concurrent_orders_across_shards_never_oversell(client: RedisCluster) -> None:
    """Forty buyers each want one unit of two products on two shards, five of each in stock, and try
    again while the counters show units (two buyers can each take the other's last unit and both be
    refused, then both give theirs back): five orders are made, every counter ends at zero, and no
    unit is held by an order not made."""
    scripts = Scripts(client)  # type: ignore[arg-type]
    customer, pids = await _setup(client, 2, stock=5)

    async def buyer(i: int) -> Reserved | None:
        for attempt in range(50):
            try:
                made = await _reserve(scripts, customer, [(pids[0], 1), (pids[1], 1)], f"c{i}-{attempt}")
                assert isinstance(made, Reserved)
                return made
            except OutOfStock:
                if 0 in await _stock(client, pids):
                    return None
        raise AssertionError("a buyer kept being refused while units were left")

    made = [r for r in await asyncio.gather(*[buyer(i) for i in range(40)]) if r is not None]
    assert (5, [0, 0]) == (len(made), await _stock(client, pids))
    assert [5, 5] == [int(await client.get(keys.stock_held(pid))) for pid in pids]
    assert await _nothing_under_way(client, customer)


async def test_a_process_dying_between_steps_holds_nothing_past_the_sweep(client: RedisCluster) -> None:
    """A reservation that took its lines and never committed (its process gone) is undone by the
    sweeper once past its deadline: the units go back once, the key is free again, and its commit
    or a take still on its way, arriving late, is refused and takes nothing."""
    scripts = Scripts(client)  # type: ignore[arg-type]
    customer, pids = await _setup(client, 2, stock=4)
    order_id = new_order_id(customer)
    lines = [ReserveLine(pids[0], 3), ReserveLine(pids[1], 1)]
    dying = _order(customer, [(pids[0], 3), (pids[1], 1)], "dies", order_id)
    await scripts.order_begin(dying, deadline_ms=int(time.time() * 1000) - 1, lock_ttl_seconds=5, note_ttl_seconds=60)
    taken = await scripts.stock_take(order_id=order_id, line=lines[0], drop_passes=(), mark_ttl_seconds=60)
    assert [1, 4] == await _stock(client, pids)
    with pytest.raises(ReservationBusy):  # the same key while the first request is (apparently) under way
        await scripts.order_begin(replace(dying, order_id=new_order_id(customer)), deadline_ms=0,
                                  lock_ttl_seconds=5, note_ttl_seconds=60)

    assert 1 == await undo_stale(client, scripts)  # type: ignore[arg-type]
    assert ([4, 4], 0) == (await _stock(client, pids), await undo_stale(client, scripts))  # type: ignore[arg-type]
    with pytest.raises(ReservationUndone):
        await scripts.stock_take(order_id=order_id, line=lines[1], drop_passes=(), mark_ttl_seconds=60)
    with pytest.raises(ReservationUndone):
        await scripts.order_commit(dying, [taken])
    assert [4, 4] == await _stock(client, pids)
    assert isinstance(await _reserve(scripts, customer, [(pids[0], 3), (pids[1], 1)], "dies"), Reserved)
    assert [1, 3] == await _stock(client, pids)


async def test_a_reservation_cancelled_mid_way_leaves_an_order_or_nothing(client: RedisCluster) -> None:
    """A request cancelled while it reserves (its client went away) ends, once its deadline has passed
    and the sweeper has run, either as the order it made (the key answers it) or with every unit back."""
    scripts = Scripts(client)  # type: ignore[arg-type]
    customer, pids = await _setup(client, 3, stock=6)
    lines = [(pids[0], 1), (pids[1], 1), (pids[2], 1)]
    task: asyncio.Task[Any] = asyncio.create_task(_reserve(scripts, customer, lines, "gone"))
    await asyncio.sleep(0)  # let it start its first step, not synchronisation: any point of cancel is valid
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    async def settled() -> bool:
        await undo_stale(client, scripts)  # type: ignore[arg-type]
        return await _nothing_under_way(client, customer)

    await eventually(settled, timeout=30, message="the cancelled reservation to be committed or undone")
    replay = await _reserve(scripts, customer, lines, "gone")
    left = await _stock(client, pids)
    # The replay made the order now if the cancelled one left nothing: either way one order, one unit each.
    assert ([5, 5, 5], [1, 1, 1]) == (left, [int(await client.get(keys.stock_held(p))) for p in pids])
    assert isinstance(replay, (Replayed, Reserved))


async def test_concurrent_takes_of_one_product_share_calls_and_stop_exactly_at_zero(client: RedisCluster) -> None:
    """Thirty concurrent one-unit orders for a product with 20 units, sent as the API sends them (its
    takes batched): 20 orders, 10 OUT_OF_STOCK, 0 left, and fewer take calls than orders."""
    customer, (pid,) = await _setup(client, 1, 20)
    scripts = Scripts(client, in_steps=True)
    calls: list[int] = []
    sent = scripts._call

    async def counted(name: str, keys_: Any, args: Any, pipe: Any = None) -> Any:
        if name == "stock_take":
            calls.append(len(keys_) - 5)
        return await sent(name, keys_, args, pipe)

    scripts._call = counted  # type: ignore[method-assign]
    results = await asyncio.gather(*(_reserve(scripts, customer, [(pid, 1)], f"one-{i}") for i in range(30)),
                                   return_exceptions=True)
    made = [r for r in results if isinstance(r, Reserved)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert (20, 10, [0]) == (len(made), len(refused), await _stock(client, [pid]))
    assert 30 == sum(calls) and len(calls) < 30, calls  # every order's take, in fewer calls
    await scripts.aclose()
