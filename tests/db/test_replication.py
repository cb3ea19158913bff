"""Writes confirmed by replicas (db.replication) on a real 3-primary + 3-replica cluster."""

from __future__ import annotations

import time

import pytest
from redis.asyncio.cluster import RedisCluster

from db import keys
from db.order_records import new_order_id
from db.replication import WAIT_TIMEOUT_MS, Confirmer, NotReplicated
from db.scripts import ReserveLine, Scripts


async def _product(client: RedisCluster, pid: int, stock: int) -> None:
    await client.set(keys.stock(pid), stock)
    await client.hset(keys.product_info(pid), mapping={"price": 1000, "currency": "EUR", "limit": ""})


async def test_a_step_counts_once_a_replica_holds_it_and_fails_clearly_when_none_can(client: RedisCluster) -> None:
    """With one replica a primary, WAIT 1 confirms a take and the units are gone; asking for two, the
    take is answered TRY_AGAIN after the wait's timeout, not with an unconfirmed yes."""
    pid = 880_001
    await _product(client, pid, 5)
    confirmed = Scripts(client, in_steps=True, wait_replicas=1)
    await confirmed.stock_take(order_id=new_order_id(1), line=ReserveLine(pid, 2), drop_passes=(), mark_ttl_seconds=60)
    assert "3" == (await client.get(keys.stock(pid))).decode()

    too_many = Scripts(client, in_steps=True, wait_replicas=2)
    began = time.monotonic()
    with pytest.raises(NotReplicated) as refused:
        await too_many.stock_take(order_id=new_order_id(1), line=ReserveLine(pid, 1), drop_passes=(),
                                  mark_ttl_seconds=60)
    assert time.monotonic() - began >= WAIT_TIMEOUT_MS / 1000 * 0.9
    assert "TRY_AGAIN" == refused.value.code
    for scripts in (confirmed, too_many):
        await scripts.aclose()


async def test_primaries_short_of_replicas_are_named(client: RedisCluster) -> None:
    """Start-up warns about primaries that cannot confirm: none with one replica each, all three
    when two are asked for."""
    enough, short = Confirmer(client, 1), Confirmer(client, 2)
    assert {} == await enough.short_of_replicas()
    assert [1, 1, 1] == sorted((await short.short_of_replicas()).values())
