"""A drop's waiting line in Redis: joining, admission, passes, and where each shopper stands.

What must hold:
- One place per shopper (a customer, or a guest session): joining again keeps it, so a reload
  or a second tab changes nothing. Places live in Redis' state role, persisted as orders are.
- Fair order: everyone who joined before the start is in a uniformly random order (their score
  is a random number below every post-start score, as good as a shuffle at the start); everyone
  after the start in order of arrival (a counter in the same script). Ranks never change once the
  drop has started, so "admitted" is one cursor over them.
- Admission is a function of time and of the state in Redis, advanced by whoever calls
  (`advance`: a join, a read of the line, the ticker every API process runs): no coordinator to
  lose. It never admits past the units left: while the passes out, each taking up to
  `per_buyer` units, cover every unit left it waits, and it resumes when units come back.
- A pass is bound to its shopper, lasts `pass_ttl_seconds`, and buys one order: it is taken
  before the reservation and given back if the reservation is refused (db.orders), spent if not.
  A pass not used in time leaves at the next advance and the next shopper gets the budget.

Listeners do not ask Redis for their own position: `advance` publishes one small DropState per
drop (at most one a second, at once when the drop sells out, gets units back or ends), and each
listener works its status out of it and the rank it read once (`line_view`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from db import keys
from db.backends import Backends
from db.drops import DropRecord, Drops
from db.enums import DropLineStatus
from db.errors import DropNotFound, RateLimited
from db.scripts import DropAdvanced, DropMissing, PassRefused
from db.stock import StockCounters
from db.values import as_text

log = logging.getLogger("rushcart.drops")

# Least time between two state messages of a drop (a listener needs one a second, not one per admission).
PUBLISH_INTERVAL_MS = 1000
# A process' listeners of one line take its state messages at most this often, the newest, and never
# more than one delivery at a time: every message carries the whole state, so one a crowd is not yet
# through is replaced by the next rather than queued behind it (db.events, conflated channels).
LISTEN_MIN_INTERVAL_SECONDS = 0.1
# Admissions one advance may make, so one script call stays short whatever the backlog.
MAX_ADMIT_PER_CALL = 500
# How often each API process advances every live drop.
TICK_SECONDS = 0.5
# How long a process shares one advance among its listeners that need the line's state at once
# (a crowd subscribing, every listener after a lost pub/sub connection).
SHARED_STATE_SECONDS = 0.25
JOIN_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class DropState:
    """A drop's line as a whole: what `advance` publishes and returns."""

    at_ms: int
    started: bool
    ended: bool
    admitted: int
    outstanding: int
    line_length: int
    units_left: int
    used: int
    expired: int

    @classmethod
    def of(cls, advanced: DropAdvanced) -> DropState:
        return cls(advanced.now_ms, advanced.started, advanced.ended, advanced.admitted, advanced.outstanding,
                   advanced.line_length, advanced.units_left, advanced.used, advanced.expired)

    @classmethod
    def from_event(cls, event: Mapping[str, Any], before: DropState) -> DropState:
        if event.get("ended"):
            return cls(int(event["at"]), before.started, True, before.admitted, 0, before.line_length,
                       before.units_left, before.used, before.expired)
        return cls(int(event["at"]), bool(event["started"]), bool(event["ended"]), int(event["admitted"]),
                   int(event["outstanding"]), int(event["lineLength"]), int(event["unitsLeft"]),
                   int(event["used"]), int(event["expired"]))


@dataclass(frozen=True)
class Place:
    """One shopper's place, as read from Redis. `fixed`: read after the start, so the rank is final."""

    rank: int | None
    fixed: bool
    pass_expires_ms: int | None
    spent: str

    @classmethod
    def of(cls, advanced: DropAdvanced) -> Place:
        return cls(advanced.rank if advanced.rank >= 0 else None, advanced.started, advanced.pass_expires_ms,
                   advanced.spent)


@dataclass(frozen=True)
class LineView:
    """What a shopper is told: their status, position and wait, the units left, their pass."""

    drop_id: int
    status: DropLineStatus
    position: int | None
    ahead: int | None
    estimated_wait_seconds: int | None
    units_left: int
    pass_expires_ms: int | None
    line_length: int


def _wait_seconds(drop: DropRecord, ahead: int) -> int:
    """A rough wait for a shopper with `ahead` shoppers still to be admitted before them."""
    turns = ahead + 1
    if drop.admit_per_second:
        return math.ceil(turns / drop.admit_per_second)
    assert drop.max_active
    # Only passes out at once limit admission: at worst every pass before theirs runs its course.
    return math.ceil(turns / drop.max_active) * drop.pass_ttl_seconds


def line_view(drop: DropRecord, state: DropState, place: Place) -> LineView:
    """Where the shopper at `place` stands when the line is `state`.

    A waiting shopper can no longer be reached when the shoppers ahead (those holding a pass and
    those waiting before them), each buying at least one unit, would take every unit left: they
    are told SOLD_OUT (no unit left) or LIKELY_SOLD_OUT (units may come back from unpaid orders).
    """

    def view(status: DropLineStatus, position: int | None = None, ahead: int | None = None,
             wait: int | None = None, expires: int | None = None) -> LineView:
        return LineView(drop.id, status, position, ahead, wait, state.units_left, expires, state.line_length)

    if state.ended:
        return view(DropLineStatus.ENDED)
    if place.rank is None:
        return view(DropLineStatus.NOT_IN_LINE)
    if place.spent.startswith("USED:"):
        return view(DropLineStatus.PURCHASED)
    if place.pass_expires_ms is not None and place.pass_expires_ms > state.at_ms:
        return view(DropLineStatus.ADMITTED, 0, 0, 0, place.pass_expires_ms)
    if place.spent or place.pass_expires_ms is not None or (place.fixed and place.rank < state.admitted):
        return view(DropLineStatus.PASS_EXPIRED)
    if not state.started:
        return view(DropLineStatus.WAITING, wait=max(0, math.ceil((drop.starts_ms - state.at_ms) / 1000)))
    ahead = place.rank - state.admitted
    if state.units_left == 0:
        return view(DropLineStatus.SOLD_OUT, ahead + 1, ahead)
    if state.outstanding + ahead >= state.units_left:
        return view(DropLineStatus.LIKELY_SOLD_OUT, ahead + 1, ahead)
    return view(DropLineStatus.WAITING, ahead + 1, ahead, _wait_seconds(drop, ahead))


def customer_shopper(customer_id: int) -> str:
    return f"c:{customer_id}"


def guest_shopper(session_id: str) -> str:
    return f"s:{session_id}"


class DropLine:
    def __init__(self, backends: Backends, drops: Drops, stock: StockCounters, joins_per_minute: int = 20) -> None:
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._drops = drops
        self._stock = stock
        self._joins_per_minute = joins_per_minute
        self._shared: dict[int, tuple[float, asyncio.Future[DropState]]] = {}

    async def drop(self, drop_id: int) -> DropRecord:
        record = await self._drops.cached(drop_id)
        if record is None:
            raise DropNotFound(f"no drop with id {drop_id}")
        return record

    async def units_left(self, drop: DropRecord) -> int:
        return sum(max(0, units or 0) for units in await self._stock.available(list(drop.product_ids)))

    async def has_place(self, drop: DropRecord, shopper: str) -> bool:
        return await self._redis.zscore(keys.drop_line(drop.id), shopper) is not None

    async def join(self, drop: DropRecord, shopper: str, client: str) -> bool | None:
        """Give the shopper a place (True), keep the one they have (False); None once the drop ended.
        A new place counts against the client address' budget, so many sessions do not buy many places."""
        if await self._redis.zscore(keys.drop_line(drop.id), shopper) is None:
            limited = await self._scripts.ratelimit_take([(keys.drop_joins(client), self._joins_per_minute)],
                                                         JOIN_WINDOW_SECONDS)
            if limited is not None:
                raise RateLimited(f"too many places taken from your address; try again in {limited[1]} s")
        # secrets: a shopper must not be able to predict (or replay their way to) a good early place.
        early = secrets.randbits(52) / 2**52
        for _ in range(2):
            try:
                return await self._scripts.drop_join(drop.id, shopper, early)
            except DropMissing:
                await self._restore(drop.id)
        raise RuntimeError("a drop's policy keeps going missing from Redis")

    async def advance(self, drop: DropRecord, shopper: str | None = None) -> tuple[DropState, Place]:
        # The units live on the products' slots, not the line's, so they are read outside the script;
        # the passes used until then are read first, so the script can tell which purchases the
        # figure may miss (db/lua/drop_advance.lua).
        used_before = int(await self._redis.hget(keys.drop_state(drop.id), "used") or 0)
        units = await self.units_left(drop)
        for _ in range(2):
            try:
                advanced = await self._scripts.drop_advance(
                    drop.id, units_left=units, used_before=used_before, publish_interval_ms=PUBLISH_INTERVAL_MS,
                    shopper=shopper, max_admit=MAX_ADMIT_PER_CALL,
                )
                return DropState.of(advanced), Place.of(advanced)
            except DropMissing:
                await self._restore(drop.id)
        raise RuntimeError("a drop's policy keeps going missing from Redis")

    async def shared_state(self, drop: DropRecord) -> DropState:
        """The line's state from one advance shared by every caller in this process within
        SHARED_STATE_SECONDS, so ten thousand listeners arriving at once cost one script call."""
        now = time.monotonic()
        hit = self._shared.get(drop.id)
        if hit is None or now - hit[0] > SHARED_STATE_SECONDS or (hit[1].done() and hit[1].exception()):
            future: asyncio.Future[DropState] = asyncio.get_running_loop().create_future()
            self._shared[drop.id] = (now, future)
            try:
                future.set_result((await self.advance(drop))[0])
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved here, so an unawaited failure is not logged as lost
                raise
            return future.result()
        return await asyncio.shield(hit[1])

    async def place(self, drop: DropRecord, shopper: str, started: bool) -> Place:
        """Only the shopper's place, without moving the line (a listener whose own place moved):
        three reads of one slot in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrank(keys.drop_line(drop.id), shopper)
            pipe.zscore(keys.drop_passes(drop.id), shopper)
            pipe.hget(keys.drop_spent(drop.id), shopper)
            rank, expiry, spent = await pipe.execute()
        return Place(None if rank is None else int(rank), started, None if expiry is None else int(expiry),
                     "" if spent is None else as_text(spent))

    async def _restore(self, drop_id: int) -> None:
        if await self._drops.restore_policy(drop_id) is None:
            raise DropNotFound(f"no drop with id {drop_id}")

    async def take_pass(self, drop_id: int, shoppers: Sequence[str]) -> str | PassRefused | None:
        """The shopper whose pass was taken for one order, a refusal, or None when the drop is over
        (ended, or unknown: a name left by a drop that never committed)."""
        for _ in range(2):
            try:
                return await self._scripts.drop_pass_take(drop_id, shoppers)
            except DropMissing:
                record = await self._drops.restore_policy(drop_id)
                if record is None:
                    return None
        raise RuntimeError("a drop's policy keeps going missing from Redis")

    async def forget_drop(self, product_id: int, drop_id: int) -> None:
        await self._drops.forget_products([product_id], drop_id)

    async def spend_pass(self, drop_id: int, shopper: str, order_id: str) -> None:
        await self._scripts.drop_pass_spend(drop_id, shopper, order_id)

    async def give_back_pass(self, drop_id: int, shopper: str) -> None:
        await self._scripts.drop_pass_return(drop_id, shopper)

    async def tick(self) -> None:
        """Advance every live drop once."""
        for drop_id in await self._drops.live_ids():
            record = await self._drops.cached(drop_id)
            if record is not None and record.ended_at is None:
                await self.advance(record)

    async def run_ticker(self, interval: float = TICK_SECONDS) -> None:
        """Advance the live drops every `interval` until cancelled; every process runs one, so the
        line moves while any process is up."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or PostgreSQL away for a moment: the next tick tries again
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A driver turned the cancellation into an error of its own (asyncpg in the middle
                    # of a query does); swallowing it would keep the ticker, and the shutdown, going.
                    raise asyncio.CancelledError() from exc
                log.warning("advancing the drops' lines failed (%s); trying again", exc)
            await asyncio.sleep(interval)


# How long a shutdown waits for the ticker to stop.
TICKER_STOP_SECONDS = 10.0


async def stop_ticker(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    # Bounded: a shutdown must end even if a tick is stuck in a call that ignores cancellation.
    done, _ = await asyncio.wait({task}, timeout=TICKER_STOP_SECONDS)
    if not done:
        log.error("the drops' ticker did not stop within %.0f s; leaving it", TICKER_STOP_SECONDS)
    elif not task.cancelled() and task.exception() is not None:
        log.error("the drops' ticker ended with an error", exc_info=task.exception())
