"""Order status and stock events: published by the Lua scripts, fanned out by one connection.

Message format (JSON on Redis sharded pub/sub; channel names in db.keys):
    events:order:{b<n>}:<oid>  {"orderId": str, "status": "PENDING"|"PAID"|"CANCELLED", "cancelReason": str?,
                               "at": float}
    events:stock:{p<pid>}      {"productId": str, "available": int, "at": float}
`at` is seconds since the epoch: for a status change the time PostgreSQL committed it (the value
stored in the order's row), for a stock change Redis' clock inside the script that made it.
Stock figures are coalesced where they are published (db.stock_events): at most one per product
per window, and always the latest.

Order and stock events travel on sharded pub/sub (SPUBLISH inside the scripts, SSUBSCRIBE here):
each channel hashes to its key's slot, so on a cluster an event is sent by the shard that holds
the order or product, not broadcast to every node. Channels every process watches for its whole
life (token revocations) stay on global pub/sub.

An EventHub holds one Redis pub/sub connection per process (on a cluster, one per node that holds
a channel it listens to: db.pubsub_links). It subscribes to a channel when its first local
listener arrives and unsubscribes when the last one leaves, so a thousand idle subscribers cost
one Redis connection. Each listener has a bounded buffer: a consumer
that cannot keep up loses the oldest events (and is told to re-read the current state)
rather than growing memory.

Fan-out never holds up the rest of the process. Waking a listener schedules its subscriber's
work on the event loop; waking ten thousand at once would queue ten thousand steps ahead of a
purchase that arrives a moment later. A channel with more than FANOUT_BATCH listeners is
therefore delivered by one background task, FANOUT_BATCH listeners per turn of the loop, so
other work interleaves with a crowd's delivery, and while the process serves requests (one came
within the last BUSY_SECONDS, see note_request) the task rests after each batch twice as long as
the batch took, so a crowd's delivery takes at most a third of the loop however little CPU the
process gets (a purchase then waits for one batch at most; the crowd waits three times as
long). With nothing but watchers on the process, the rest would only delay them: the crowd is
then delivered at full speed, still a batch per turn of the loop. A channel may also be
conflated: its listeners then get at most one event per
`min_interval`, the newest, decided once for all of them (stock figures during a sale: the crowd
wants the latest number, not every step). A conflated channel
has at most one delivery under way: when a crowd takes longer to reach than `min_interval`, the
newest event waits for the delivery in progress instead of queueing a round per event behind it,
which would make every figure later than the one before and grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from db.pubsub_links import PubSubLinks
from db.state_redis import StateRedis
from db.values import as_text

log = logging.getLogger("rushcart.events")

RESYNC: dict[str, Any] = {"resync": True}
# Pushed to a listener whose subscriber's token may have been revoked (see Accounts.on_revoked).
REVOKED: dict[str, Any] = {"revoked": True}
# Listeners woken per turn of the event loop. Each wakes one subscriber's step (a few tens of µs),
# so a purchase on the same process waits at most a few ms behind a crowd's delivery.
FANOUT_BATCH = 16
# A process that answered a request this recently is serving buyers: the fan-out leaves them room.
BUSY_SECONDS = 1.0


class Listener:
    # Thousands live per process for hours: no per-instance dict, no asyncio.Event (a deque each).
    __slots__ = ("_events", "_waiter", "channel", "hub")

    def __init__(self, hub: EventHub, channel: str, buffer: int) -> None:
        self.hub = hub
        self.channel = channel
        self._events: deque[dict[str, Any]] = deque(maxlen=buffer)
        self._waiter: asyncio.Future[None] | None = None

    def push(self, event: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            self._events.clear()
            self._events.append(RESYNC)
        self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> dict[str, Any]:
        while not self._events:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._events.popleft()

    def drain(self) -> list[dict[str, Any]]:
        events = list(self._events)
        self._events.clear()
        return events

    def __len__(self) -> int:
        return len(self._events)


class _Channel:
    """One subscribed channel: its listeners and, when conflated, the event held back."""

    __slots__ = ("busy", "held", "last_sent", "listeners", "min_interval", "timer")

    def __init__(self, min_interval: float) -> None:
        self.listeners: set[Listener] = set()
        self.min_interval = min_interval
        self.last_sent = 0.0
        self.held: dict[str, Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.busy = False  # a conflated channel's delivery is in the outbox


class EventHub:
    def __init__(self, redis: StateRedis, buffer: int = 64, batch: int = FANOUT_BATCH) -> None:
        self._redis = redis
        self._buffer = buffer
        self._batch = batch
        self._links = PubSubLinks(redis, self._on_message, self._on_lost)
        self._channels: dict[str, _Channel] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._watchers: dict[str, list[Callable[[dict[str, Any] | None], None]]] = {}
        # Deliveries too large to make at once, in arrival order; one task works through them.
        self._outbox: deque[tuple[_Channel, list[Listener], dict[str, Any]]] = deque()
        self._outbox_ready = asyncio.Event()
        self._fanout_task: asyncio.Task[None] | None = None
        self._last_request = float("-inf")

    def note_request(self) -> None:
        """A request other than a subscription's event is being served (see the module's docstring)."""
        self._last_request = time.monotonic()

    def watch(self, channel: str, callback: Callable[[dict[str, Any] | None], None]) -> None:
        """Call `callback(event)` for every event on `channel` for the life of the hub, and
        `callback(None)` when events may have been missed (a lost connection). Register before start()."""
        self._watchers.setdefault(channel, []).append(callback)

    @property
    def subscriber_count(self) -> int:
        return sum(len(c.listeners) for c in self._channels.values())

    async def start(self) -> None:
        await self._links.start(list(self._watchers))
        self._fanout_task = asyncio.create_task(self._fan_out(), name="rushcart-event-fanout")

    async def close(self) -> None:
        if self._fanout_task is not None:
            self._fanout_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fanout_task
        for channel in self._channels.values():
            if channel.timer is not None:
                channel.timer.cancel()
        await self._links.close()

    async def listen(self, channel: str, min_interval: float = 0.0) -> Listener:
        """A listener on the sharded channel `channel`, returned once Redis has confirmed the subscription.

        `min_interval` (seconds) conflates the channel: set by its first listener, it holds for all.
        """
        listener = Listener(self, channel, self._buffer)
        async with self._lock:
            state = self._channels.get(channel)
            if state is None:
                state = self._channels[channel] = _Channel(min_interval)
            state.listeners.add(listener)
            if len(state.listeners) == 1:
                self._confirmed[channel] = asyncio.get_running_loop().create_future()
                await self._links.subscribe(channel)
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
            state = self._channels.get(listener.channel)
            if state is None:
                return
            state.listeners.discard(listener)
            if not state.listeners:
                del self._channels[listener.channel]
                if state.timer is not None:
                    state.timer.cancel()
                self._confirmed.pop(listener.channel, None)
                await self._links.unsubscribe(listener.channel)

    def _deliver(self, state: _Channel, event: dict[str, Any]) -> None:
        state.last_sent = time.monotonic()
        if len(state.listeners) <= self._batch and not self._outbox:
            for listener in state.listeners:
                listener.push(event)
            return
        state.busy = state.min_interval > 0
        self._outbox.append((state, list(state.listeners), event))
        self._outbox_ready.set()

    def _release_held(self, state: _Channel) -> None:
        state.timer = None
        event, state.held = state.held, None
        if event is not None and state.listeners:
            self._deliver(state, event)

    def _schedule_held(self, state: _Channel) -> None:
        """Deliver a conflated channel's held event once its interval is over and no delivery runs."""
        if state.held is None or state.timer is not None or state.busy:
            return
        wait = state.last_sent + state.min_interval - time.monotonic()
        if wait <= 0:
            self._release_held(state)
        else:
            state.timer = asyncio.get_running_loop().call_later(wait, self._release_held, state)

    def _dispatch(self, channel: str, event: dict[str, Any]) -> None:
        for callback in self._watchers.get(channel, ()):
            callback(event)
        state = self._channels.get(channel)
        if state is None:
            return
        if state.min_interval <= 0:
            self._deliver(state, event)
            return
        # Conflated: the newest event waits out the interval since the last delivery, and the
        # end of a delivery still under way.
        state.held = event
        self._schedule_held(state)

    async def _fan_out(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                state, listeners, event = self._outbox.popleft()
                for start in range(0, len(listeners), self._batch):
                    began = time.monotonic()
                    for listener in listeners[start:start + self._batch]:
                        listener.push(event)
                    # Let the woken subscribers and everything else queued run before the next batch.
                    await asyncio.sleep(0)
                    # Then, while requests are being served, rest twice as long: a crowd's delivery
                    # takes at most a third of the loop, so a purchase arriving meanwhile waits for
                    # one batch at most, however little CPU the process gets (a rest as long as the
                    # batch still added ~10 ms to the median purchase on a loaded machine;
                    # tests/server/test_live_fanout.py).
                    now = time.monotonic()
                    if now - self._last_request < BUSY_SECONDS:
                        await asyncio.sleep(2 * (now - began))
                if state.busy:
                    state.busy = False
                    self._schedule_held(state)

    def _on_lost(self, channels: list[str]) -> None:
        """Events on these channels may have been missed (a lost connection): every listener re-reads
        the current state, every watcher is told."""
        for channel in channels:
            state = self._channels.get(channel)
            if state is not None:
                for listener in list(state.listeners):
                    listener.push(RESYNC)
            for callback in self._watchers.get(channel, ()):
                callback(None)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = as_text(message["channel"])
        if message["type"] in ("subscribe", "ssubscribe"):
            confirmed = self._confirmed.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if message["type"] not in ("message", "smessage"):
            return
        try:
            event = json.loads(message["data"])
        except (TypeError, ValueError):
            log.error("dropping malformed event on %s: %r", channel, message["data"])
            return
        self._dispatch(channel, event)
