"""Order status and stock events: published by the Lua scripts, fanned out by one connection.

Message format (JSON on Redis pub/sub):
    events:order:{oid}   {"orderId": str, "status": "PENDING"|"PAID"|"CANCELLED", "cancelReason": str?, "at": float}
    events:stock:{pid}   {"productId": str, "available": int, "at": float}
`at` is seconds since the epoch, read from Redis' clock inside the script that made the change.

An EventHub holds one Redis pub/sub connection per process. It subscribes to a channel when
its first local listener arrives and unsubscribes when the last one leaves, so a thousand
idle subscribers cost one Redis connection. Each listener has a bounded buffer: a consumer
that cannot keep up loses the oldest events (and is told to re-read the current state)
rather than growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from db.values import as_text

log = logging.getLogger("rushcart.events")

HUB_CHANNEL = "events:hub"  # always subscribed, so the reader has a connection to wait on
RESYNC: dict[str, Any] = {"resync": True}


class Listener:
    def __init__(self, hub: EventHub, channel: str, buffer: int) -> None:
        self.hub = hub
        self.channel = channel
        self._events: deque[dict[str, Any]] = deque(maxlen=buffer)
        self._ready = asyncio.Event()

    def push(self, event: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            self._events.clear()
            self._events.append(RESYNC)
        self._events.append(event)
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()

    def drain(self) -> list[dict[str, Any]]:
        events = list(self._events)
        self._events.clear()
        return events

    def __len__(self) -> int:
        return len(self._events)


class EventHub:
    def __init__(self, redis: Redis, buffer: int = 64) -> None:
        self._redis = redis
        self._buffer = buffer
        self._pubsub: PubSub = redis.pubsub()
        self._listeners: dict[str, set[Listener]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._watchers: dict[str, list[Callable[[dict[str, Any] | None], None]]] = {}

    def watch(self, channel: str, callback: Callable[[dict[str, Any] | None], None]) -> None:
        """Call `callback(event)` for every event on `channel` for the life of the hub, and
        `callback(None)` when events may have been missed (a lost connection). Register before start()."""
        self._watchers.setdefault(channel, []).append(callback)

    @property
    def subscriber_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())

    async def start(self) -> None:
        await self._pubsub.subscribe(HUB_CHANNEL, *self._watchers)
        self._task = asyncio.create_task(self._read(), name="rushcart-event-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()

    async def listen(self, channel: str) -> Listener:
        """A listener on `channel`, returned once Redis has confirmed the subscription."""
        listener = Listener(self, channel, self._buffer)
        async with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            listeners.add(listener)
            if len(listeners) == 1:
                self._confirmed[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
            confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            try:
                await asyncio.wait_for(asyncio.shield(confirmed), timeout=10)
            except BaseException:
                await self.forget(listener)
                raise
        return listener

    async def forget(self, listener: Listener) -> None:
        async with self._lock:
            listeners = self._listeners.get(listener.channel)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.channel]
                self._confirmed.pop(listener.channel, None)
                with contextlib.suppress(redis.exceptions.RedisError):
                    await self._pubsub.unsubscribe(listener.channel)

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=None)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                log.warning("event hub lost Redis; reconnecting in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                # redis-py re-subscribes every channel on reconnect; events sent meanwhile are gone,
                # so every listener re-reads the current state.
                for listeners in list(self._listeners.values()):
                    for listener in list(listeners):
                        listener.push(RESYNC)
                for callbacks in self._watchers.values():
                    for callback in callbacks:
                        callback(None)
                continue
            if message is None:
                continue
            channel = as_text(message["channel"])
            if message["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                continue
            if message["type"] != "message":
                continue
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                log.error("dropping malformed event on %s: %r", channel, message["data"])
                continue
            for listener in list(self._listeners.get(channel, ())):
                listener.push(event)
            for callback in self._watchers.get(channel, ()):
                callback(event)
