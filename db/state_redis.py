"""The state Redis: one server, or a client of a Redis/Valkey Cluster (REDIS_CLUSTER).

Both speak every single-key command and script call the stores make (a script's keys share one
slot, db.keys). What differs is gathered here: a read of keys on several slots, and writes that
one server can make atomic together but a cluster cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

StateRedis: TypeAlias = Redis | RedisCluster

# A server or a shard that cannot answer now: down, failing over, or moving a slot.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterDownError,
               redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError,
               redis.exceptions.SlotNotCoveredError, redis.exceptions.ReadOnlyError,
               redis.exceptions.BusyLoadingError)


async def mget(redis: StateRedis, names: Sequence[str]) -> list[Any]:
    """GET of keys that may live on different slots: one MGET on one server, one per node on a cluster."""
    if not names:
        return []
    if isinstance(redis, RedisCluster):
        return list(await redis.mget_nonatomic(list(names)))
    return list(await redis.mget(list(names)))


async def delete_and_publish(redis: StateRedis, key: str, channel: str, message: str) -> bool:
    """Delete `key` and tell every process on `channel`: in one transaction on one server; one after
    the other on a cluster (a transaction there holds one slot's keys, and a global channel has none).
    True when the key existed."""
    if isinstance(redis, RedisCluster):
        deleted = await redis.delete(key)
        await redis.publish(channel, message)
        return bool(deleted)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.publish(channel, message)
        deleted, _ = await pipe.execute()
    return bool(deleted)
