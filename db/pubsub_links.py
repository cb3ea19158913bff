"""Where the event hub's channels are subscribed: the pub/sub connections of one process.

On one server, one connection carries every channel. On a cluster a sharded channel can only be
subscribed on the node that holds its slot, so there is one connection per node that holds a
subscribed channel (not one per channel, nor per subscriber), each read by its own task: a
reader that polls the nodes in turn (redis-py's get_sharded_message) would leave one node's
events waiting behind another's timeout. Global channels (token revocations), which a cluster
delivers on every node, ride on the connection of the node their name hashes to.

A connection lost on one server is re-made by redis-py with its channels. A node lost in a
cluster may be gone for good (its replica is promoted elsewhere): its channels are subscribed
again wherever the cluster now places their slots, and a node that moves a slot away
(SUNSUBSCRIBE pushed by the server) has that channel followed to its new home. Either way the
hub is told which channels may have missed events, so their listeners re-read the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from db.state_redis import StateRedis
from db.values import as_text

log = logging.getLogger("rushcart.events")

# Subscribed on every connection, so each reader has something to wait on from the start.
HUB_CHANNEL = "events:hub"
# Lost connections are retried with backoff up to this pause.
MAX_BACKOFF_SECONDS = 5.0

OnMessage = Callable[[dict[str, Any]], None]
OnLost = Callable[[list[str]], None]


def _raise_if_cancelling() -> None:
    """Inside an `except` for a lost connection: a client may turn this task's cancellation into an
    error of its own, and a reader that swallowed it would keep going, and whatever waits for it to
    stop (a shutdown) with it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class _Link:
    """One pub/sub connection and the task reading it."""

    def __init__(self, name: str, pubsub: PubSub, client: Redis | None) -> None:
        self.name = name
        self.pubsub = pubsub
        self.client = client  # a node's own client (cluster), closed with the link
        self.task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.pubsub.aclose()
        if self.client is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self.client.aclose()


class PubSubLinks:
    def __init__(self, redis: StateRedis, on_message: OnMessage, on_lost: OnLost) -> None:
        self._redis = redis
        self._on_message = on_message
        self._on_lost = on_lost
        self._links: dict[str, _Link] = {}
        # channel -> (link name, sharded): what is subscribed where.
        self._where: dict[str, tuple[str, bool]] = {}
        self._lock = asyncio.Lock()
        self._closing = False

    async def start(self, global_channels: list[str]) -> None:
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()  # the slots' owners, to place channels before any command
        async with self._lock:
            for channel in global_channels:
                await self._subscribe(channel, sharded=False)
            if isinstance(self._redis, Redis):
                await self._link_for(HUB_CHANNEL)  # the one connection, even with nothing watched

    async def subscribe(self, channel: str) -> None:
        """SSUBSCRIBE `channel` where its slot lives; the confirmation arrives as a message."""
        async with self._lock:
            await self._subscribe(channel, sharded=True)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            where = self._where.pop(channel, None)
            link = self._links.get(where[0]) if where else None
            if link is not None:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await link.pubsub.sunsubscribe(channel)

    async def close(self) -> None:
        self._closing = True
        for link in list(self._links.values()):
            await link.close()
        self._links.clear()

    async def _subscribe(self, channel: str, *, sharded: bool) -> None:
        link = await self._link_for(channel)
        self._where[channel] = (link.name, sharded)
        if sharded:
            await link.pubsub.ssubscribe(channel)
        else:
            await link.pubsub.subscribe(channel)

    async def _link_for(self, channel: str) -> _Link:
        node = self._redis.get_node_from_key(channel) if isinstance(self._redis, RedisCluster) else None
        if isinstance(self._redis, RedisCluster) and node is None:
            raise redis.exceptions.SlotNotCoveredError(f"no node holds the slot of {channel}")
        name = "" if node is None else node.name
        link = self._links.get(name)
        if link is not None:
            return link
        if node is not None:
            client = Redis(host=node.host, port=int(node.port))
            link = _Link(name, client.pubsub(), client)
        else:
            link = _Link(name, self._redis.pubsub(), None)
        self._links[name] = link
        await link.pubsub.subscribe(HUB_CHANNEL)
        link.task = asyncio.create_task(self._read(link), name=f"rushcart-event-hub-{name or 'redis'}")
        return link

    async def _read(self, link: _Link) -> None:
        backoff = 0.1
        while True:
            try:
                message = await link.pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError,
                    redis.exceptions.ResponseError):
                # A ResponseError here is a subscription refused (MOVED: the slot is elsewhere now).
                if self._closing:
                    return
                _raise_if_cancelling()
                log.warning("event hub lost Redis%s; reconnecting in %.1fs", f" node {link.name}" if link.name else "",
                            backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                if link.client is None:
                    # redis-py re-subscribes every channel on reconnect; what was sent meanwhile is gone.
                    self._on_lost(list(self._where))
                    continue
                await self._rehome(link)
                return
            if message is None:
                continue
            if message["type"] == "sunsubscribe" and link.client is not None:
                channel = as_text(message["channel"])
                where = self._where.get(channel)
                if where is not None and where[0] == link.name:
                    # The node gave the slot away (a resharding) while the channel is still wanted.
                    await self._follow(channel)
                continue
            self._on_message(message)

    async def _rehome(self, lost: _Link) -> None:
        """Subscribe a lost node's channels again where the cluster now places them."""
        self._links.pop(lost.name, None)
        await lost.close()
        channels = [c for c, (name, _) in self._where.items() if name == lost.name]
        backoff = 0.1
        while not self._closing:
            try:
                assert isinstance(self._redis, RedisCluster)
                # Any keyed command makes the cluster client read the slots' owners anew.
                await self._redis.exists(HUB_CHANNEL)
                async with self._lock:
                    for channel in channels:
                        if channel in self._where:
                            await self._subscribe(channel, sharded=self._where[channel][1])
                break
            except (redis.exceptions.RedisError, OSError):
                _raise_if_cancelling()
                log.warning("event hub cannot reach the cluster; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self._on_lost(channels)

    async def _follow(self, channel: str) -> None:
        async with self._lock:
            where = self._where.get(channel)
            if where is not None:
                await self._subscribe(channel, sharded=where[1])
        self._on_lost([channel])
