"""A drop's line on a real Valkey Cluster: each line lives on one shard and its every step runs there.

The line's scripts are the ones the API runs (db.scripts), sent through redis-py's cluster client
to a 3-primary + 3-replica cluster of the embedded binary: joining, advancing, a pass taken, given
back, taken again and spent, the end, and the line's state message on sharded pub/sub. Three
drops whose tags hash to three different shards run side by side, so a line that reached past its
own slot would be refused by the cluster (every script starts `#!lua`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from db import keys
from db.scripts import PassRefused, Scripts


def _drops_on_three_shards(client: RedisCluster) -> list[int]:
    """Drop ids whose lines live on three different primaries."""
    chosen: dict[str, int] = {}
    for drop_id in range(1, 200):
        node = client.get_node_from_key(keys.drop_line(drop_id))
        assert node is not None
        chosen.setdefault(node.name, drop_id)
        if len(chosen) == 3:
            return sorted(chosen.values())
    raise AssertionError("no three drops on three shards among 200 ids")


async def _admitted(scripts: Scripts, drop_id: int, shopper: str) -> None:
    deadline = time.monotonic() + 10
    while (await scripts.drop_advance(drop_id, units_left=10, used_before=0, publish_interval_ms=0,
                                      shopper=shopper,
                                      max_admit=100)).pass_expires_ms is None:
        assert time.monotonic() < deadline, f"{shopper} was never admitted to drop {drop_id}"
        await asyncio.sleep(0.02)


async def test_a_drops_line_runs_on_its_own_shard(client: RedisCluster) -> None:
    """Three lines on three shards: joins keep one place each, the first joiner is admitted first, a
    pass is refused to the shopper still waiting, given back after a refusal and spent once, and the
    end closes the line; every step ran where the cluster put the drop."""
    scripts = Scripts(client)  # type: ignore[arg-type]  # the cluster client speaks the same commands
    drops = _drops_on_three_shards(client)
    assert 3 == len({key_slot(keys.drop_line(d).encode()) for d in drops})
    starts_ms = int(time.time() * 1000) - 1000
    for drop_id in drops:
        # One admission a second, at most one pass out: the second shopper waits behind the first.
        await scripts.drop_setup(drop_id, starts_ms=starts_ms, rate=1.0, max_active=1, pass_ttl_ms=60_000,
                                 per_buyer=1, product_ids=[drop_id], ended=False)
        assert await scripts.drop_join(drop_id, "c:1", 0.5) is True
        assert await scripts.drop_join(drop_id, "c:1", 0.5) is False  # one place per shopper
        assert await scripts.drop_join(drop_id, "c:2", 0.5) is True

    for drop_id in drops:
        await _admitted(scripts, drop_id, "c:1")
        refused = await scripts.drop_pass_take(drop_id, ["c:2"])
        assert isinstance(refused, PassRefused) and refused.position == 1
        assert "c:1" == await scripts.drop_pass_take(drop_id, ["c:1"])
        await scripts.drop_pass_return(drop_id, "c:1")  # the order was refused: the turn is kept
        assert "c:1" == await scripts.drop_pass_take(drop_id, ["c:1"])
        await scripts.drop_pass_spend(drop_id, "c:1", f"order-{drop_id}")
        assert isinstance(await scripts.drop_pass_take(drop_id, ["c:1"]), PassRefused)  # used once

    for drop_id in drops:
        await scripts.drop_end(drop_id)
        assert await scripts.drop_join(drop_id, "c:3", 0.5) is None
        assert await scripts.drop_pass_take(drop_id, ["c:2"]) is None


async def test_a_lines_state_message_arrives_on_sharded_pub_sub(client: RedisCluster) -> None:
    """The state message of a drop's line is published on its shard's sharded channel, where a
    listener subscribed with SSUBSCRIBE receives it."""
    scripts = Scripts(client)  # type: ignore[arg-type]
    drop_id = _drops_on_three_shards(client)[-1] + 1000
    channel = keys.drop_channel(drop_id)
    await scripts.drop_setup(drop_id, starts_ms=int(time.time() * 1000) - 1000, rate=10.0, max_active=None,
                             pass_ttl_ms=60_000, per_buyer=1, product_ids=[drop_id], ended=False)
    pubsub = client.pubsub()
    try:
        await pubsub.ssubscribe(channel)
        node = client.get_node_from_key(channel)
        await scripts.drop_join(drop_id, "c:1", 0.5)
        await scripts.drop_advance(drop_id, units_left=10, used_before=0, publish_interval_ms=0, shopper=None,
                                   max_admit=100)
        message = await _next_message(pubsub, node)
        assert channel == message["channel"].decode()
        assert "admitted" in json.loads(message["data"])
    finally:
        await pubsub.aclose()


async def _next_message(pubsub: Any, node: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=0.5, target_node=node)
        if message is not None and message["type"] in ("smessage", b"smessage"):
            return message
    raise AssertionError("no state message on the drop's sharded channel within 10 s")
