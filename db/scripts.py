"""The Lua scripts of db/lua as typed calls: named arguments in, a dataclass or a domain error out.

Nobody else packs KEYS and ARGV or reads a script's raw reply. Every script starts with `#!lua`
(so Redis 7+/Valkey refuses a key it did not declare, instead of working by luck on one node),
is loaded once per client and called by SHA, and answers by one convention: a table whose first
element is a status word, 'OK' or the name of a refusal, followed by that status' values.
Key names come from db.keys, channels too, and every TTL is an argument, so no figure is written
twice. Every call's keys share one hash slot and so do the sharded channels it publishes on
(SPUBLISH), or a cluster refuses it; tests/db/test_key_slots.py checks every call, and lists the
steps that do not yet. A shared step (emptying a cart) lives in db/lua/lib and is put into a script where it
says `--#include NAME`.

Errors raised here:

    RushcartError (db.errors)        a refusal the caller passes on to the client
    StateMissing                     Redis lacks state the script needs; load it and call again
    ├── AllowanceMissing             the customer's allowance hash
    ├── CartMissing                  a cart hash
    └── StockMissing (product_id)    a stock counter or a product's sale facts
    CartChanged                      checkout's cart changed since it was read; read it again
    PassNeeded (product_id, drop_id) a line is a product of a live drop and no pass is held for it
    DropMissing                      Redis lacks a drop's policy; write it and call again
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from db import buckets, keys
from db.errors import IdempotencyKeyReused, InvalidInput, OutOfStock, PurchaseLimitExceeded
from db.replication import Confirmer
from db.state_redis import StateRedis
from db.stock_events import STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS, OwedStockFigures
from db.take_batches import MAX_BATCH, PendingTake, TakeBatches
from db.values import as_text

LUA_DIR = Path(__file__).resolve().parent / "lua"
# The steps an order or a cancellation is answered after; with REDIS_WAIT_REPLICAS each counts once
# replicas hold it (db.replication). An undo's give-back too: lost in a failover after its
# reservation's note was abandoned, its units would stay held with nothing left to undo them.
CONFIRMED = frozenset({"order_reserve", "order_begin", "stock_take", "order_commit", "stock_untake",
                       "order_status", "stock_release", "order_mirror"})
# A guest cart merged in steps is remembered this long, so a repeat merges nothing twice.
MERGE_MEMORY_SECONDS = 86400
_INCLUDE = re.compile(r"^--#include (\w+)$", re.MULTILINE)


@cache
def source(name: str) -> str:
    """A script's text with its `--#include` lines replaced by the library files they name."""
    text = (LUA_DIR / f"{name}.lua").read_text()
    if not text.startswith("#!lua"):
        raise ValueError(f"db/lua/{name}.lua must start with a #!lua line")
    return _INCLUDE.sub(lambda m: (LUA_DIR / "lib" / f"{m.group(1)}.lua").read_text().rstrip("\n"), text)


def script_names() -> list[str]:
    return sorted(path.stem for path in LUA_DIR.glob("*.lua"))


class StateMissing(Exception):
    """Redis lacks state a script needs (restart, flush, expiry); the caller loads it and retries."""


class AllowanceMissing(StateMissing):
    pass


class CartMissing(StateMissing):
    pass


class StockMissing(StateMissing):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"no stock counter or sale facts for product {product_id}")
        self.product_id = product_id


class CartChanged(Exception):
    """The cart changed between reading it and reserving it; the caller reads it again."""


class PassNeeded(Exception):
    """A line is a product of a live drop: the caller takes the shopper's pass and tries again."""

    def __init__(self, product_id: int, drop_id: int) -> None:
        super().__init__(f"product {product_id} is in drop {drop_id}: a pass is needed")
        self.product_id = product_id
        self.drop_id = drop_id


class DropMissing(StateMissing):
    """A drop's policy (drop:{dN}:conf) is not in Redis."""


class ReservationBusy(Exception):
    """Another reservation with the same idempotency key is under way (in steps): its outcome decides
    whether this one replays its order or goes ahead."""


class ReservationUndone(Exception):
    """A reservation in steps was undone by the sweeper before it was committed (it took too long);
    nothing of it is left, and the caller may start again under a new order id."""


@dataclass(frozen=True)
class ReserveLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class CheckoutCart:
    """Checkout passes the cart it read, so the script can refuse if the cart changed since."""

    owner: str
    version: int
    ttl_seconds: int


@dataclass(frozen=True)
class OrderRequest:
    """One order to reserve, as the one-call script and the steps of a cluster both take it."""

    customer_id: int
    order_id: str
    idempotency_key: str
    fingerprint: str
    lines: Sequence[ReserveLine]
    now_ms: int
    expires_ms: int
    idempotency_ttl_seconds: int
    allowance_ttl_seconds: int
    persist_flag_ms: int
    max_total_cents: int
    cart: CheckoutCart | None = None
    drop_passes: Sequence[int] = ()  # the drops whose pass the caller took for this order


@dataclass(frozen=True)
class Reserved:
    """A new order: every line reserved, the record written, the id queued for persistence."""

    total_cents: int
    currency: str
    lines: list[tuple[int, int, int]]  # product id, quantity, unit price (cents)
    enqueue_persistence: bool  # no persistence job was pending: the caller enqueues one


@dataclass(frozen=True)
class TakenLine:
    """A line whose units a product's step took, with the sale facts it read there."""

    product_id: int
    quantity: int
    price_cents: int
    currency: str
    limit: str  # max per customer, '' for none


@dataclass(frozen=True)
class StaleReservation:
    """A reservation in steps past its deadline, claimed by the sweeper to be undone."""

    order_id: str
    product_ids: list[int]  # empty when its note was gone
    customer_id: int | None  # None when its note was gone
    lock: str  # the name of its idempotency key's lock ('' when its note was gone)


@dataclass(frozen=True)
class Replayed:
    """The idempotency key already made this order."""

    order_id: str


@dataclass(frozen=True)
class DropAdvanced:
    """A drop's line after an advance, and one shopper's place in it (rank -1: not in line)."""

    now_ms: int
    started: bool
    ended: bool
    admitted: int
    outstanding: int
    line_length: int
    units_left: int
    used: int
    expired: int
    rank: int
    pass_expires_ms: int | None
    spent: str


@dataclass(frozen=True)
class PassRefused:
    """No usable pass: why (WAITING, NOT_STARTED, NOT_IN_LINE, IN_USE, USED, EXPIRED) and the
    position in line when waiting."""

    why: str
    position: int | None


@dataclass(frozen=True)
class MergeCounts:
    guest_lines: int
    lines_added: int
    lines_combined: int
    lines_capped: list[int]


@dataclass(frozen=True)
class ReleaseLine:
    """A cancelled line going back to its counter, unless the counter was rebuilt since `epoch`."""

    product_id: int
    quantity: int
    epoch: str


@dataclass(frozen=True)
class PersistedOrder:
    """What finishing a persisted order in Redis needs: its holds to drop."""

    order_id: str
    customer_id: int
    lines: Sequence[tuple[int, int]]  # product id, quantity


def _reply(raw: Any) -> tuple[str, list[Any]]:
    return as_text(raw[0]), list(raw[1:])


def _unexpected(script: str, status: str) -> RuntimeError:
    return RuntimeError(f"{script} answered {status}")


def _customer_side(order: OrderRequest, line_count: int) -> tuple[list[str], list[Any]]:
    """KEYS[1..7] and ARGV[1..14] of the layout order_reserve.lua and order_commit.lua share (the
    customer's side; lib/reserve.lua's order_record reads it)."""
    cid, oid, cart = order.customer_id, order.order_id, order.cart
    bucket = buckets.of_customer(cid)
    script_keys = [
        keys.idempotency(cid, order.idempotency_key), keys.allowance(cid), keys.orders_to_persist_of(oid),
        keys.persist_pending(bucket), keys.order(oid), keys.orders_inflight(cid),
        keys.carts_dirty(bucket) if cart is None else keys.carts_dirty_of(cart.owner),
    ]
    args: list[Any] = [
        cid, oid, order.now_ms, order.expires_ms, order.fingerprint, order.idempotency_ttl_seconds,
        order.allowance_ttl_seconds, order.persist_flag_ms, keys.order_channel(oid),
        "" if cart is None else cart.version, "" if cart is None else cart.owner,
        0 if cart is None else cart.ttl_seconds, order.max_total_cents, line_count,
    ]
    return script_keys, args


def _merge_counts(values: list[Any]) -> MergeCounts:
    return MergeCounts(
        guest_lines=int(values[0]),
        lines_added=int(values[1]),
        lines_combined=int(values[2]),
        lines_capped=[int(as_text(pid)) for pid in values[3:]],
    )


def _reserved(total: Any, currency: Any, enqueue: Any, lines_json: Any) -> Reserved:
    return Reserved(
        total_cents=int(total),
        currency=as_text(currency),
        lines=[(int(p), int(q), int(u)) for p, q, u in json.loads(as_text(lines_json))],
        enqueue_persistence=int(enqueue) == 1,
    )


def _refuse(script: str, status: str, values: list[Any], max_total_cents: int = 0) -> NoReturn:
    """Raise what a reservation's refusal means (order_reserve.lua and the steps it is made of)."""
    if status == "IDEM_MISMATCH":
        raise IdempotencyKeyReused()
    if status == "BUSY":
        raise ReservationBusy()
    if status == "NO_ALLOWANCE":
        raise AllowanceMissing()
    if status == "MISSING":
        raise StockMissing(int(as_text(values[0])))
    if status == "CART_CHANGED":
        raise CartChanged()
    if status == "NEEDS_PASS":
        raise PassNeeded(int(as_text(values[0])), int(as_text(values[1])))
    if status == "OUT_OF_STOCK":
        pid, left = int(as_text(values[0])), int(values[1])
        raise OutOfStock(f"only {left} left of product {pid}", product_id=pid, available=left)
    if status == "LIMIT":
        pid, left = int(as_text(values[0])), int(values[1])
        raise PurchaseLimitExceeded(f"you may buy {left} more of product {pid}", product_id=pid, available=left)
    if status == "CURRENCY":
        raise InvalidInput("all lines of an order must share one currency", field="lines",
                           product_id=int(as_text(values[0])))
    if status == "TOO_LARGE":
        raise InvalidInput(f"an order's total may be at most {max_total_cents} cents; this one is "
                           f"{int(values[0])}", field="lines")
    raise _unexpected(script, status)


class Scripts:
    """Every script of db/lua bound to one asyncio Redis client.

    redis-py's Script objects send EVALSHA and load the script again after a Redis restart
    (NOSCRIPT), so the source is never resent on the hot path.
    """

    def __init__(self, client: StateRedis, *, in_steps: bool = False, wait_replicas: int = 0,
                 take_batch: int = MAX_BATCH) -> None:
        self.client = client
        # A cluster: a change whose keys live on several slots (a status mirrored, a batch
        # persisted, a cart merged) runs as steps of one slot each, from the same Lua sources.
        self.in_steps = in_steps
        # REDIS_WAIT_REPLICAS: the steps of orders and cancellations count once replicas hold them.
        self.confirmer = Confirmer(client, wait_replicas) if wait_replicas > 0 else None
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source(name)) for name in script_names()
        }
        # Concurrent takes of one product go in one call (db.take_batches).
        self._takes = TakeBatches(self._take_batch, take_batch)
        # Stock figures this process's scripts held back (db.stock_events), published once due.
        self.owed_stock = OwedStockFigures(self.stock_flush)

    async def _call(self, name: str, keys_: Sequence[str], args: Sequence[Any], client: Pipeline | None = None) -> Any:
        """The one place a script is sent (tests/db/test_key_slots.py watches it): on `client`, a
        pipeline, it is only queued."""
        if client is None and self.confirmer is not None and name in CONFIRMED:
            return await self.confirmer.run(self._scripts[name], keys_, args)
        return await self._scripts[name](keys=list(keys_), args=list(args), client=client)

    async def aclose(self) -> None:
        await self.owed_stock.close()
        if self.confirmer is not None:
            await self.confirmer.aclose()

    async def _replayed(self, order_id: str, key: str) -> Replayed:
        """An order an idempotency key made, answered again once replicas hold it (see db.replication)."""
        if self.confirmer is not None:
            await self.confirmer.slot(key)
        return Replayed(order_id)

    async def _run(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> tuple[str, list[Any]]:
        return _reply(await self._call(name, keys_, args))

    # Orders ----------------------------------------------------------------------------------

    async def order_reserve(self, order: OrderRequest) -> Reserved | Replayed:
        """Reserve every line or none (db/lua/order_reserve.lua). A line of a live drop whose pass is
        not among the order's `drop_passes` raises PassNeeded."""
        script_keys, args = _customer_side(order, len(order.lines))
        for line in order.lines:
            pid = line.product_id
            script_keys += [keys.stock(pid), keys.stock_held(pid), keys.product_info(pid), keys.stock_published(pid)]
            args += [pid, line.quantity, keys.stock_channel(pid)]
        args += [STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS]
        if order.drop_passes:
            args.append("," + ",".join(map(str, order.drop_passes)) + ",")
        if order.cart is not None:
            script_keys.append(keys.cart(order.cart.owner))
        status, values = await self._run("order_reserve", script_keys, args)
        if status == "OK":
            total, currency, enqueue, lines_json, *owed = values
            if owed:
                self.owed_stock.owe(int(pid) for pid in owed)
            return _reserved(total, currency, enqueue, lines_json)
        if status == "REPLAY":
            return await self._replayed(as_text(values[0]), script_keys[0])
        _refuse("order_reserve", status, values, order.max_total_cents)

    # A reservation in steps (a cluster; db.reservation): the same checks and writes as order_reserve,
    # a product's on its slot and the order's on its bucket's.

    async def order_begin(self, order: OrderRequest, *, deadline_ms: int, lock_ttl_seconds: int,
                          note_ttl_seconds: int) -> Replayed | None:
        """The first step (db/lua/order_begin.lua): None when the reservation may go on."""
        cid, cart = order.customer_id, order.cart
        script_keys = [keys.idempotency(cid, order.idempotency_key), keys.idempotency_lock(cid, order.idempotency_key),
                       keys.allowance(cid), keys.reserving(order.order_id),
                       keys.orders_reserving(buckets.of_customer(cid))]
        if cart is not None:
            script_keys.append(keys.cart(cart.owner))
        status, values = await self._run("order_begin", script_keys, [
            cid, order.order_id, order.fingerprint, deadline_ms,
            json.dumps([[line.product_id, line.quantity] for line in order.lines]),
            "" if cart is None else cart.version, lock_ttl_seconds, note_ttl_seconds,
        ])
        if status == "OK":
            return None
        if status == "REPLAY":
            return await self._replayed(as_text(values[0]), script_keys[0])
        _refuse("order_begin", status, values)

    async def stock_take(self, *, order_id: str, line: ReserveLine, drop_passes: Sequence[int],
                         mark_ttl_seconds: int) -> TakenLine:
        """A product's step (db/lua/stock_take.lua): the sale facts of a line whose units are taken.
        Sent together with the same product's other takes of this process (db.take_batches)."""
        passes = "," + ",".join(map(str, drop_passes)) + "," if drop_passes else ""
        answer = await self._takes.take(line.product_id, mark_ttl_seconds,
                                        PendingTake(order_id, line.quantity, passes))
        assert isinstance(answer, TakenLine)
        return answer

    async def _take_batch(self, pid: int, mark_ttl_seconds: int, takes: Sequence[PendingTake]) -> list[Any]:
        """One stock_take call for several orders' lines of product `pid`: per take, its TakenLine or
        the refusal it raises."""
        args: list[Any] = [pid, keys.stock_channel(pid), STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS,
                           mark_ttl_seconds]
        for take in takes:
            args += [take.quantity, take.passes]
        status, values = await self._run(
            "stock_take",
            [keys.stock(pid), keys.stock_held(pid), keys.product_info(pid), keys.stock_published(pid),
             keys.stock_epoch(pid), *(keys.stock_taken(pid, take.order_id) for take in takes)], args)
        if status == "MISSING":
            return [StockMissing(pid)] * len(takes)
        if status != "OK":
            raise _unexpected("stock_take", status)
        price, currency, limit, owed, *outcomes = values
        if int(owed):
            self.owed_stock.owe([pid])
        answers: list[Any] = []
        for take, (outcome, value) in zip(takes, zip(outcomes[::2], outcomes[1::2], strict=True), strict=True):
            outcome = as_text(outcome)
            if outcome == "OK":
                answers.append(TakenLine(pid, take.quantity, int(price), as_text(currency), as_text(limit or b"")))
            elif outcome == "UNDONE":
                answers.append(ReservationUndone())
            else:
                try:
                    _refuse("stock_take", outcome, [str(pid), value])
                except Exception as refusal:
                    answers.append(refusal)
        return answers

    async def stock_untake(self, *, order_id: str, product_id: int, mark_ttl_seconds: int) -> int:
        """Undo a product's step (db/lua/stock_untake.lua), once; returns the units given back."""
        pid = product_id
        status, values = await self._run(
            "stock_untake",
            [keys.stock(pid), keys.stock_held(pid), keys.stock_published(pid), keys.stock_epoch(pid),
             keys.stock_taken(pid, order_id)],
            [pid, keys.stock_channel(pid), STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS, mark_ttl_seconds],
        )
        if status != "OK":
            raise _unexpected("stock_untake", status)
        if int(values[1]):
            self.owed_stock.owe([pid])
        return int(values[0])

    async def order_commit(self, order: OrderRequest, taken: Sequence[TakenLine]) -> Reserved:
        """The last step (db/lua/order_commit.lua): the order recorded as order_reserve records it."""
        cid = order.customer_id
        script_keys, args = _customer_side(order, len(taken))
        script_keys += [keys.reserving(order.order_id), keys.orders_reserving(buckets.of_customer(cid)),
                        keys.idempotency_lock(cid, order.idempotency_key)]
        if order.cart is not None:
            script_keys.append(keys.cart(order.cart.owner))
        for line in taken:
            args += [line.product_id, line.quantity, line.price_cents, line.currency, line.limit]
        status, values = await self._run("order_commit", script_keys, args)
        if status == "OK":
            return _reserved(*values)
        if status == "UNDONE":
            raise ReservationUndone()
        _refuse("order_commit", status, values, order.max_total_cents)

    async def order_abandon(self, *, order_id: str, lock: str) -> None:
        """Close a reservation whose lines are undone (db/lua/order_abandon.lua); `lock` names its
        idempotency key's lock (keys.idempotency_lock; '' when unknown)."""
        bucket = buckets.of_order(order_id)
        assert bucket is not None, "a reservation in steps has a bucketed order id"
        status, _ = await self._run(
            "order_abandon", [keys.reserving(order_id), keys.orders_reserving(bucket), *([lock] if lock else [])],
            [order_id],
        )
        if status != "OK":
            raise _unexpected("order_abandon", status)

    async def orders_stale(self, bucket: int, order_ids: Sequence[str], now_ms: int) -> list[StaleReservation]:
        """Claim the bucket's reservations past their deadline for the sweeper (db/lua/orders_stale.lua)."""
        status, values = await self._run(
            "orders_stale", [keys.orders_reserving(bucket), *map(keys.reserving, order_ids)], [now_ms, *order_ids],
        )
        if status != "OK":
            raise _unexpected("orders_stale", status)
        claimed = []
        for i in range(0, len(values), 4):
            oid, lines, customer, lock = (as_text(v) for v in values[i:i + 4])
            claimed.append(StaleReservation(oid, [int(pid) for pid, _ in json.loads(lines)] if lines else [],
                                            int(customer) if customer else None, lock))
        return claimed

    async def order_status(
        self,
        *,
        order_id: str,
        customer_id: int,
        status: str,
        cancel_reason: str | None,
        at_ms: int,
        released: Sequence[ReleaseLine] = (),
        marker_ttl_seconds: int = 7 * 86400,
    ) -> bool:
        """Mirror a committed status change into Redis and publish it (db/lua/order_status.lua, or
        its steps). Safe to repeat: True only for the call that gave the allowance back."""
        if self.in_steps:
            return await self._order_status_in_steps(
                order_id=order_id, customer_id=customer_id, status=status, cancel_reason=cancel_reason,
                at_ms=at_ms, released=released, marker_ttl_seconds=marker_ttl_seconds)
        pids = [line.product_id for line in released]
        args: list[Any] = [order_id, status, cancel_reason or "", at_ms, keys.order_channel(order_id),
                           marker_ttl_seconds, STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS]
        for line in released:
            args += [line.product_id, line.quantity, line.epoch, keys.stock_channel(line.product_id)]
        reply, values = await self._run(
            "order_status",
            [keys.order(order_id), keys.allowance(customer_id), keys.order_released(order_id),
             *map(keys.stock, pids), *map(keys.stock_epoch, pids), *map(keys.stock_published, pids)],
            args,
        )
        if reply != "OK":
            raise _unexpected("order_status", reply)
        if len(values) > 1:
            self.owed_stock.owe(int(as_text(pid)) for pid in values[1:])
        return int(values[0]) == 1

    async def _order_status_in_steps(
        self, *, order_id: str, customer_id: int, status: str, cancel_reason: str | None, at_ms: int,
        released: Sequence[ReleaseLine], marker_ttl_seconds: int,
    ) -> bool:
        """order_status in steps: each line's units back on its product's slot, side by side, then
        the customer's side, which publishes the change once the stock is back. Each step gives back
        once, so the outbox's sweeper may run them all again."""
        if status == "CANCELLED":
            await asyncio.gather(*(self.stock_release(order_id, line, marker_ttl_seconds) for line in released))
        return await self.order_mirror(
            order_id=order_id, customer_id=customer_id, status=status, cancel_reason=cancel_reason, at_ms=at_ms,
            released=released, marker_ttl_seconds=marker_ttl_seconds)

    async def stock_release(self, order_id: str, line: ReleaseLine, marker_ttl_seconds: int) -> bool:
        """A cancelled line's units back to its counter, once (db/lua/stock_release.lua); True for
        the call that gave them back."""
        pid = line.product_id
        status, values = await self._run(
            "stock_release",
            [keys.stock(pid), keys.stock_epoch(pid), keys.stock_published(pid), keys.stock_released(pid, order_id)],
            [pid, line.quantity, line.epoch, keys.stock_channel(pid), STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS,
             marker_ttl_seconds])
        if status != "OK":
            raise _unexpected("stock_release", status)
        if int(values[1]) == 1:
            self.owed_stock.owe([pid])
        return int(values[0]) == 1

    async def order_mirror(
        self, *, order_id: str, customer_id: int, status: str, cancel_reason: str | None, at_ms: int,
        released: Sequence[ReleaseLine], marker_ttl_seconds: int,
    ) -> bool:
        """The customer's side of a status change (db/lua/order_mirror.lua): the allowance back once
        when cancelled, the cached record, the event. True for the call that gave the allowance back."""
        args: list[Any] = [order_id, status, cancel_reason or "", at_ms, keys.order_channel(order_id),
                           marker_ttl_seconds]
        for line in released:
            args += [line.product_id, line.quantity]
        reply, values = await self._run(
            "order_mirror", [keys.order(order_id), keys.allowance(customer_id), keys.order_released(order_id)], args)
        if reply != "OK":
            raise _unexpected("order_mirror", reply)
        return int(values[0]) == 1

    async def orders_read(self, order_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """The orders' Redis records in one reply; None for an id without one."""
        if not order_ids:
            return []
        status, records = await self._run("orders_read", [keys.order(oid) for oid in order_ids], [])
        if status != "OK":
            raise _unexpected("orders_read", status)
        return [
            {as_text(k): as_text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)} if flat else None
            for flat in records
        ]

    async def orders_persisted(self, orders: Sequence[PersistedOrder], status_cache_seconds: int) -> int:
        """After the commit: drop the orders' holds and to-persist entries, once each. Returns how
        many this call finished (a second call, or one after a crash, finishes none)."""
        if self.in_steps:
            await self._stock_unhold(orders)
        by_queue: dict[str, list[PersistedOrder]] = {}
        for order in orders:
            by_queue.setdefault(keys.orders_to_persist_of(order.order_id), []).append(order)
        finished = 0
        # One call per queue: a batch drained from one bucket is one call.
        for queue, group in by_queue.items():
            script_keys: list[str] = [queue]
            args: list[Any] = [status_cache_seconds]
            for order in group:
                # An order made before buckets held its units on the old stock:held:<pid> names, which
                # nothing reads any more; taking them off the new counters would count them twice.
                held = order.lines if buckets.of_order(order.order_id) is not None and not self.in_steps else ()
                script_keys += [keys.order(order.order_id), keys.orders_inflight(order.customer_id),
                                *[keys.stock_held(pid) for pid, _ in held]]
                args += [order.order_id, len(held), *[qty for _, qty in held]]
            status, values = await self._run("orders_persisted", script_keys, args)
            if status != "OK":
                raise _unexpected("orders_persisted", status)
            finished += int(values[0])
        return finished

    async def _stock_unhold(self, orders: Sequence[PersistedOrder]) -> None:
        """The products' part of orders_persisted in steps: one call per product of the batch, side by
        side, before the bucket's part (if this process dies in between, the batch is drained again
        and each order's take mark says its hold was dropped already)."""
        by_product: dict[int, list[str]] = {}
        for order in orders:
            for pid, _ in order.lines:
                by_product.setdefault(pid, []).append(order.order_id)
        await asyncio.gather(*(self.stock_unhold(pid, oids) for pid, oids in by_product.items()))

    async def stock_unhold(self, product_id: int, order_ids: Sequence[str]) -> int:
        """Drop the holds of persisted orders reserved in steps on one product, once each
        (db/lua/stock_unhold.lua); returns the units no longer held."""
        status, values = await self._run(
            "stock_unhold",
            [keys.stock_held(product_id), *(keys.stock_taken(product_id, oid) for oid in order_ids)], [])
        if status != "OK":
            raise _unexpected("stock_unhold", status)
        return int(values[0])

    async def allowance_load(self, customer_id: int, units: Mapping[int, int], ttl_seconds: int) -> bool:
        """Create the customer's allowance hash unless it exists; True when this call created it."""
        args: list[Any] = [ttl_seconds]
        for pid, qty in units.items():
            args += [pid, qty]
        status, values = await self._run("allowance_load", [keys.allowance(customer_id)], args)
        if status != "OK":
            raise _unexpected("allowance_load", status)
        return int(values[0]) == 1

    # Stock -----------------------------------------------------------------------------------

    async def stock_adjust(self, product_id: int, delta: int, epoch: str | None) -> int | None:
        """Add `delta` to the counter and publish it; None when the counter is missing or (with an
        `epoch`) was rebuilt since. A result below zero is refused with InvalidInput."""
        status, values = await self._run(
            "stock_adjust",
            [keys.stock(product_id), keys.stock_epoch(product_id), keys.stock_published(product_id)],
            [delta, product_id, epoch or "", keys.stock_channel(product_id), STOCK_EVENT_WINDOW_MS,
             STOCK_PUB_TTL_SECONDS],
        )
        if status == "OK":
            if int(values[1]) == 1:
                self.owed_stock.owe([product_id])
            return int(values[0])
        if status in ("MISSING", "STALE"):
            return None
        if status == "NEGATIVE":
            left = int(values[0])
            raise InvalidInput(f"only {left} units are not held by orders; cannot write off {-delta}",
                               field="delta", product_id=product_id, available=left)
        raise _unexpected("stock_adjust", status)

    async def stock_rebuild(
        self, product_id: int, *, stock: int, held: int, price_cents: int, currency: str, limit: str,
        drop_id: int | None = None,
    ) -> int:
        """Create a missing counter (stock - held) and refresh the sale facts; returns the counter."""
        status, values = await self._run(
            "stock_rebuild",
            [keys.stock(product_id), keys.product_info(product_id), keys.stock_epoch(product_id)],
            [stock, held, price_cents, currency, limit, "" if drop_id is None else drop_id],
        )
        if status != "OK":
            raise _unexpected("stock_rebuild", status)
        return int(values[0])

    async def stock_reconcile(self, product_id: int, *, stock: int, drift_memory_seconds: int,
                              min_gap_ms: int) -> int:
        """Repair the counter if the same drift was seen `min_gap_ms` earlier; returns the drift repaired."""
        status, values = await self._run(
            "stock_reconcile",
            [keys.stock(product_id), keys.stock_held(product_id), keys.stock_drift(product_id),
             keys.stock_epoch(product_id), keys.stock_published(product_id)],
            [stock, product_id, drift_memory_seconds, min_gap_ms, keys.stock_channel(product_id),
             STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS],
        )
        if status != "OK":
            raise _unexpected("stock_reconcile", status)
        return int(values[0])

    async def stock_flush(self, product_id: int) -> int:
        """Publish the product's owed stock figure if its window is over (db/lua/stock_flush.lua);
        0 when done (published, or nothing owed any more), else the ms to wait."""
        status, values = await self._run(
            "stock_flush",
            [keys.stock(product_id), keys.stock_published(product_id)],
            [product_id, keys.stock_channel(product_id), STOCK_EVENT_WINDOW_MS, STOCK_PUB_TTL_SECONDS],
        )
        if status == "OK":
            return 0
        if status == "WAIT":
            return int(values[0])
        raise _unexpected("stock_flush", status)

    # Rate limits -----------------------------------------------------------------------------

    async def ratelimit_take(self, counters: Sequence[tuple[str, int]], window_seconds: int) -> tuple[int, int] | None:
        """Count one attempt on every (key, limit) at once; None when all were within their limits,
        else (index of the first counter at its limit, seconds until it resets) and nothing counted."""
        status, values = await self._run(
            "ratelimit_take", [key for key, _ in counters], [window_seconds, *[limit for _, limit in counters]]
        )
        if status == "OK":
            return None
        if status == "LIMITED":
            return int(values[0]) - 1, int(values[1])
        raise _unexpected("ratelimit_take", status)

    async def ratelimit_give_back(self, keys_: Sequence[str], clear: Sequence[bool]) -> None:
        """Give back one counted attempt on each key (or clear it), never going below zero."""
        status, _ = await self._run("ratelimit_give_back", keys_, ["1" if c else "0" for c in clear])
        if status != "OK":
            raise _unexpected("ratelimit_give_back", status)

    # Carts -----------------------------------------------------------------------------------

    async def cart_change(
        self, owner: str, op: str, product_id: int, quantity: int, *, now_ms: int, ttl_seconds: int,
        max_units: int, max_lines: int,
    ) -> list[Any]:
        """Apply one change to a cart; returns the cart's hash after it, flat (field, value, ...)."""
        status, values = await self._run(
            "cart_change",
            [keys.cart(owner), keys.carts_dirty_of(owner)],
            [op, product_id, quantity, max_units, max_lines, now_ms, ttl_seconds, owner],
        )
        if status == "OK":
            return values
        if status == "MISSING":
            raise CartMissing()
        if status == "LINE_LIMIT":
            current = int(as_text(values[0]))
            raise InvalidInput(f"a cart line holds at most {max_units} units; this one has {current}",
                               field="quantity", product_id=product_id)
        if status == "CART_LIMIT":
            raise InvalidInput(f"a cart holds at most {max_lines} lines", field="productId", product_id=product_id)
        raise _unexpected("cart_change", status)

    async def cart_merge(
        self, guest: str, customer: str, strategy: str, *, now_ms: int, guest_ttl_seconds: int,
        customer_ttl_seconds: int, max_units: int, max_lines: int,
    ) -> MergeCounts:
        if self.in_steps:
            return await self._cart_merge_in_steps(
                guest, customer, strategy, now_ms=now_ms, guest_ttl_seconds=guest_ttl_seconds,
                customer_ttl_seconds=customer_ttl_seconds, max_units=max_units, max_lines=max_lines)
        status, values = await self._run(
            "cart_merge",
            [keys.cart(guest), keys.cart(customer), keys.carts_dirty_of(customer), keys.carts_dirty_of(guest)],
            [strategy, max_units, max_lines, now_ms, customer_ttl_seconds, guest_ttl_seconds, guest, customer],
        )
        if status == "MISSING":
            raise CartMissing()
        if status != "OK":
            raise _unexpected("cart_merge", status)
        return _merge_counts(values)

    async def _cart_merge_in_steps(
        self, guest: str, customer: str, strategy: str, *, now_ms: int, guest_ttl_seconds: int,
        customer_ttl_seconds: int, max_units: int, max_lines: int,
    ) -> MergeCounts:
        """cart_merge in steps, the two carts being on different slots: the guest cart read on its
        slot, its lines merged on the customer's (once per guest cart version), then the guest cart
        emptied if unchanged since the read."""
        flat = {as_text(k): as_text(v) for k, v in (await self.client.hgetall(keys.cart(guest))).items()}
        if not flat:
            raise CartMissing()
        lines = sorted((int(pid), int(qty)) for pid, qty in flat.items() if not pid.startswith("_"))
        version = flat.get("_v", "")
        counts = await self.cart_merge_in(
            guest, version, lines, customer, strategy, now_ms=now_ms, customer_ttl_seconds=customer_ttl_seconds,
            max_units=max_units, max_lines=max_lines)
        if lines:
            await self.cart_empty(guest, version, now_ms=now_ms, ttl_seconds=guest_ttl_seconds)
        return counts

    async def cart_merge_in(
        self, guest: str, guest_version: str, guest_lines: Sequence[tuple[int, int]], customer: str, strategy: str,
        *, now_ms: int, customer_ttl_seconds: int, max_units: int, max_lines: int,
    ) -> MergeCounts:
        """A guest cart's lines, read at `guest_version`, merged into the customer's cart once
        (db/lua/cart_merge_in.lua): a repeat answers the first merge's counts."""
        args: list[Any] = [strategy, max_units, max_lines, now_ms, customer_ttl_seconds, customer,
                           f"{guest}|{guest_version}", MERGE_MEMORY_SECONDS]
        for pid, qty in guest_lines:
            args += [pid, qty]
        status, values = await self._run(
            "cart_merge_in", [keys.cart(customer), keys.carts_dirty_of(customer), keys.cart_merged(customer)], args)
        if status == "MISSING":
            raise CartMissing()
        if status != "OK":
            raise _unexpected("cart_merge_in", status)
        return _merge_counts(values)

    async def cart_empty(self, owner: str, version: str, *, now_ms: int, ttl_seconds: int) -> bool:
        """Empty a cart unless it changed since `version` (db/lua/cart_empty.lua); True when emptied."""
        status, values = await self._run("cart_empty", [keys.cart(owner), keys.carts_dirty_of(owner)],
                                         [version, now_ms, ttl_seconds, owner])
        if status != "OK":
            raise _unexpected("cart_empty", status)
        return int(values[0]) == 1

    async def cart_restore(self, owner: str, lines: Mapping[int, int], *, updated_ms: int, ttl_seconds: int) -> bool:
        """Put a cart read from PostgreSQL into Redis unless it is there; True when this call did."""
        args: list[Any] = [ttl_seconds, updated_ms]
        for pid, qty in sorted(lines.items()):
            args += [pid, qty]
        status, values = await self._run("cart_restore", [keys.cart(owner)], args)
        if status != "OK":
            raise _unexpected("cart_restore", status)
        return int(values[0]) == 1

    async def cart_flushed(self, versions: Sequence[tuple[str, int]]) -> None:
        """Clear each owner's dirty mark unless its cart changed after the version written, in one
        round trip. On a cluster the calls go side by side instead: a cluster pipeline would not load
        a script a node lacks (a promoted replica)."""
        if isinstance(self.client, RedisCluster):
            await asyncio.gather(*(
                self._call("cart_flushed", [keys.cart(owner), keys.carts_dirty_of(owner)], [owner, version])
                for owner, version in versions))
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for owner, version in versions:
                await self._call("cart_flushed", [keys.cart(owner), keys.carts_dirty_of(owner)], [owner, version],
                                 client=pipe)
            await pipe.execute()

    # Payments --------------------------------------------------------------------------------

    async def payment_queue(self, event_id: str, *, now_ms: int, pending_flag_ms: int) -> bool:
        """Add a stored event to payments:toapply (db/lua/payment_queue.lua); True when no drain job
        was pending, so the caller enqueues one."""
        status, values = await self._run(
            "payment_queue", [keys.PAYMENTS_TO_APPLY, keys.PAYMENTS_PENDING], [event_id, now_ms, pending_flag_ms]
        )
        if status != "OK":
            raise _unexpected("payment_queue", status)
        return int(values[0]) == 1

    # Drops ------------------------------------------------------------------------------------

    async def drop_setup(
        self, drop_id: int, *, starts_ms: int, rate: float | None, max_active: int | None, pass_ttl_ms: int,
        per_buyer: int, product_ids: Sequence[int], ended: bool,
    ) -> None:
        """Write a drop's policy where the line's scripts read it (db/lua/drop_setup.lua)."""
        status, _ = await self._run(
            "drop_setup", [keys.drop_conf(drop_id)],
            [starts_ms, "" if rate is None else repr(float(rate)), "" if max_active is None else max_active,
             pass_ttl_ms, per_buyer, ",".join(map(str, product_ids)), "1" if ended else "0"],
        )
        if status != "OK":
            raise _unexpected("drop_setup", status)

    async def drop_join(self, drop_id: int, shopper: str, early_score: float) -> bool | None:
        """Give `shopper` a place unless they have one (db/lua/drop_join.lua): True when this call
        made it, False when they had one, None when the drop has ended."""
        status, values = await self._run(
            "drop_join", [keys.drop_conf(drop_id), keys.drop_line(drop_id), keys.drop_seq(drop_id)],
            [shopper, repr(early_score)],
        )
        if status == "OK":
            return int(values[0]) == 1
        if status == "ENDED":
            return None
        if status == "MISSING":
            raise DropMissing()
        raise _unexpected("drop_join", status)

    async def drop_advance(
        self, drop_id: int, *, units_left: int, used_before: int, publish_interval_ms: int, shopper: str | None,
        max_admit: int,
    ) -> DropAdvanced:
        """Expire passes, admit whom the policy and the units left allow, publish the state if due,
        and read `shopper`'s place (db/lua/drop_advance.lua). `used_before`: the passes used by the
        time `units_left` was read (DropState.used, read first)."""
        status, v = await self._run(
            "drop_advance",
            [keys.drop_conf(drop_id), keys.drop_line(drop_id), keys.drop_state(drop_id), keys.drop_passes(drop_id),
             keys.drop_taken(drop_id), keys.drop_spent(drop_id)],
            [units_left, keys.drop_channel(drop_id), publish_interval_ms, shopper or "", max_admit, used_before],
        )
        if status == "MISSING":
            raise DropMissing()
        if status != "OK":
            raise _unexpected("drop_advance", status)
        expiry = as_text(v[10])
        return DropAdvanced(
            now_ms=int(v[0]), started=int(v[1]) == 1, ended=int(v[2]) == 1, admitted=int(v[3]),
            outstanding=int(v[4]), line_length=int(v[5]), units_left=int(v[6]), used=int(v[7]),
            expired=int(v[8]), rank=int(v[9]), pass_expires_ms=int(float(expiry)) if expiry else None,
            spent=as_text(v[11]),
        )

    async def drop_pass_take(self, drop_id: int, shoppers: Sequence[str]) -> str | PassRefused | None:
        """Take the first of `shoppers`' usable passes for one order (db/lua/drop_pass_take.lua): the
        shopper whose pass it is, a PassRefused, or None when the drop has ended."""
        status, values = await self._run(
            "drop_pass_take",
            [keys.drop_conf(drop_id), keys.drop_line(drop_id), keys.drop_state(drop_id), keys.drop_passes(drop_id),
             keys.drop_taken(drop_id), keys.drop_spent(drop_id)],
            list(shoppers),
        )
        if status == "OK":
            return as_text(values[0])
        if status == "NOT_YOUR_TURN":
            position = int(values[1])
            return PassRefused(as_text(values[0]), position if position > 0 else None)
        if status == "ENDED":
            return None
        if status == "MISSING":
            raise DropMissing()
        raise _unexpected("drop_pass_take", status)

    async def drop_pass_spend(self, drop_id: int, shopper: str, order_id: str) -> None:
        """The order a taken pass was for is reserved: the pass is used up (db/lua/drop_pass_spend.lua)."""
        status, _ = await self._run(
            "drop_pass_spend",
            [keys.drop_passes(drop_id), keys.drop_taken(drop_id), keys.drop_spent(drop_id), keys.drop_state(drop_id)],
            [shopper, order_id],
        )
        if status != "OK":
            raise _unexpected("drop_pass_spend", status)

    async def drop_pass_return(self, drop_id: int, shopper: str) -> None:
        """The order a taken pass was for was refused: the shopper may use it again (db/lua/drop_pass_return.lua)."""
        status, _ = await self._run("drop_pass_return", [keys.drop_taken(drop_id)], [shopper])
        if status != "OK":
            raise _unexpected("drop_pass_return", status)

    async def drop_end(self, drop_id: int) -> None:
        """Close a drop's line and tell its listeners (db/lua/drop_end.lua)."""
        status, _ = await self._run(
            "drop_end", [keys.drop_conf(drop_id), keys.drop_state(drop_id)], [keys.drop_channel(drop_id)]
        )
        if status != "OK":
            raise _unexpected("drop_end", status)
