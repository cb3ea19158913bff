"""Writes confirmed by replicas before they are answered (REDIS_WAIT_REPLICAS=N).

A primary answers a write before its replicas have it; if its machine dies then, the promoted
replica never had the write. So a step of an order or a cancellation is sent with WAIT N behind
it, on the same connection to the primary that holds its slot (WAIT counts the replicas holding
everything that connection wrote): the step counts as done only once N replicas hold it, and a
shard that cannot confirm within WAIT_TIMEOUT_MS (its replica is gone, or it is failing over)
makes the request fail with TRY_AGAIN rather than answer an unconfirmed yes. A retry with the
same idempotency key then answers the order if it was recorded after all (db.reservation).

On one server with replicas the same holds with the one client. On a cluster each primary gets a
small client of its own for these steps, found from the cluster client's map of the slots; a
step sent to a primary that died or gave its slot away refreshes that map and is tried again on
the slot's new primary, a few times, before the request is told to try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from db.errors import TryAgain
from db.state_redis import UNREACHABLE, StateRedis

# How long a step waits for its replicas before the request is told to try again: far above a
# healthy replica's lag (a millisecond here), far below a buyer's patience.
WAIT_TIMEOUT_MS = 1000
# Attempts on the slot's primary as the cluster's map changes under a failover.
ATTEMPTS = 3


class NotReplicated(TryAgain):
    default_message = ("the store could not confirm the change on a replica in time; send it again with the "
                       "same idempotency key")


class Confirmer:
    def __init__(self, client: StateRedis, replicas: int) -> None:
        self.replicas = replicas
        self._client = client
        self._nodes: dict[str, Redis] = {}

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply, once `replicas` replicas hold what it wrote; NotReplicated if not in time."""
        for attempt in range(ATTEMPTS):
            node = await self._node_of(keys[0])
            try:
                async with node.pipeline(transaction=False) as pipe:
                    # EVALSHA itself, not the Script: a pipeline holding a Script asks SCRIPT EXISTS
                    # first, a round trip more on every step.
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                    pipe.wait(self.replicas, WAIT_TIMEOUT_MS)
                    reply, acked = await pipe.execute()
            except redis.exceptions.NoScriptError:
                # A node that never ran it (a promoted replica, a restart): load it there, send again.
                await node.script_load(script.script)
                continue
            except UNREACHABLE:
                if attempt == ATTEMPTS - 1:
                    raise NotReplicated() from None
                await self._refresh(keys[0], attempt)
                continue
            if int(acked) < self.replicas:
                raise NotReplicated()
            return reply
        raise NotReplicated()

    async def slot(self, key: str) -> None:
        """Everything written so far to `key`'s slot is held by `replicas` replicas (a replayed answer
        is confirmed by a write of its own: WAIT only counts what its connection wrote)."""
        node = await self._node_of(key)
        try:
            async with node.pipeline(transaction=False) as pipe:
                pipe.set(f"replicated:{_tag(key)}", 1, px=WAIT_TIMEOUT_MS)
                pipe.wait(self.replicas, WAIT_TIMEOUT_MS)
                _, acked = await pipe.execute()
        except UNREACHABLE:
            raise NotReplicated() from None
        if int(acked) < self.replicas:
            raise NotReplicated()

    async def short_of_replicas(self) -> dict[str, int]:
        """Primaries with fewer replicas connected than a confirmation needs, with how many they have:
        every order touching them is told TRY_AGAIN until they have enough."""
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()
            infos = {node.name: await self._client.info("replication", target_nodes=node)
                     for node in self._client.get_primaries()}
        else:
            infos = {"the state Redis": await self._client.info("replication")}
        connected = {name: int(info.get("connected_slaves", 0)) for name, info in infos.items()}
        return {name: count for name, count in connected.items() if count < self.replicas}

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()

    async def _node_of(self, key: str) -> Redis:
        if isinstance(self._client, Redis):
            return self._client
        await self._client.initialize()
        node = self._client.get_node_from_key(key)
        if node is None:
            raise NotReplicated()
        client = self._nodes.get(node.name)
        if client is None:
            pool = BlockingConnectionPool(host=node.host, port=int(node.port), max_connections=64, timeout=10)
            client = self._nodes[node.name] = Redis(connection_pool=pool)
        return client

    async def _refresh(self, key: str, attempt: int) -> None:
        """Let the cluster client learn where the slot lives now (it follows MOVED and re-reads the
        map after a lost node), after a pause that gives a failover time."""
        await asyncio.sleep(0.1 * 2**attempt)
        if isinstance(self._client, RedisCluster):
            try:
                await self._client.exists(key)
            except UNREACHABLE:
                pass


def _tag(key: str) -> str:
    """The hash tag of a key ({...}), which places a key of its own on the same slot."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start:end + 1] if start >= 0 and end > start + 1 else key
