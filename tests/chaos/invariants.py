"""Draining a stack after a sale, and the invariants that must hold once it has drained.

`drain` waits (with a deadline) until nothing is in flight: no order waits in Redis for
persistence, no persistence or payment job is queued, every live worker is idle, and every
webhook event of the sale whose order exists has been applied. `check_sale` then compares what
clients were answered (tests.chaos.sale) with PostgreSQL and Redis, and returns every violated
invariant at once, each naming what it compared.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import redis as sync_redis
from rq import Queue, Worker

from db import buckets, keys
from db.order_persistence import backlog
from db.state_redis import mget
from jobs import queues
from tests.chaos.sale import Sale
from tests.stack import OUTPUT, Stack, eventually

AVAILABLE = "query($id: ID!) { product(id: $id) { available } }"


@dataclass
class Report:
    """What a check found: `problems` must be empty; `facts` describe the run."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def expect(self, ok: bool, name: str, detail: Any = "") -> None:
        if not ok:
            self.problems.append(f"{name}: {detail}")

    def __str__(self) -> str:
        facts = ", ".join(f"{k}={v}" for k, v in self.facts.items())
        return "\n".join([f"facts: {facts}", *[f"VIOLATED {p}" for p in self.problems]])


def record(scenario: str, text: str) -> None:
    """Append a line to the chaos log beside the server logs (figures for humans, not assertions)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT / "chaos.log", "a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} [{scenario}] {text}\n")


def _sample(items: Iterable[Any], n: int = 5) -> list[Any]:
    return sorted(items)[:n]


# Draining ------------------------------------------------------------------------------------


def queue_url(stack: Stack) -> str:
    """Where RQ's queues live: the state Redis, or a server of their own beside a cluster."""
    return stack.env.get("QUEUE_REDIS_URL") or stack.redis_url


def _queued(redis_url: str) -> list[int]:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        return [int(client.llen(f"rq:queue:{q}")) for q in (queues.ORDERS, queues.PAYMENTS)]
    finally:
        client.close()


def _workers_idle(redis_url: str, live_pids: set[int]) -> tuple[int, int]:
    """(live workers registered with RQ, how many of them are busy)."""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        live = [w for w in Worker.all(connection=client) if w.pid in live_pids]
        return len(live), sum(1 for w in live if w.get_state() == "busy")
    finally:
        client.close()


async def drain(stack: Stack, redis: Any, pg: asyncpg.Pool, sale: Sale | None = None, *, timeout: float = 90,
                extra: Callable[[], Awaitable[bool]] | None = None) -> float:
    """Wait until the stack has finished the sale's work; returns how long that took.

    Done means, all at one look: orders:topersist is empty, the orders and payments queues are
    empty, every live worker is registered and idle, no committed status change waits for its
    Redis step (status_mirrors), every webhook event of `sale` whose order is
    in PostgreSQL has left `received`/`waiting`, and `extra()` (a scenario's own condition) holds.
    """
    started = time.monotonic()
    event_ids = [w.event_id for w in (sale.webhooks if sale else []) if w.status in (200, 202)]
    last: dict[str, Any] = {}

    async def done() -> bool:
        live_pids = {w.pid for w in stack.workers if w.poll() is None}
        last["live workers"] = len(live_pids)
        if not live_pids:
            return False
        last["to persist"] = await backlog(redis)
        last["queued"] = await asyncio.to_thread(_queued, queue_url(stack))
        if last["to persist"] or any(last["queued"]):
            return False
        registered, busy = await asyncio.to_thread(_workers_idle, queue_url(stack), live_pids)
        last["registered, busy"] = (registered, busy)
        if registered < len(live_pids) or busy:
            return False
        # A reservation in steps whose process died is undone by the sweeper past its deadline.
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in range(buckets.count()):
                pipe.zcard(keys.orders_reserving(bucket))
            last["reserving"] = sum(await pipe.execute())
        if last["reserving"]:
            return False
        # A committed change whose Redis step was lost is finished by the sweeper.
        last["owed mirrors"] = await pg.fetchval("SELECT count(*) FROM status_mirrors")
        if last["owed mirrors"]:
            return False
        if event_ids:
            last["open events"] = await pg.fetchval(
                "SELECT count(*) FROM payment_events e WHERE e.id = ANY($1) AND e.state IN ('received', 'waiting') "
                "AND EXISTS (SELECT 1 FROM orders o WHERE o.id = CAST(e.order_id AS uuid))", event_ids)
            if last["open events"]:
                return False
        return await extra() if extra is not None else True

    try:
        await eventually(done, timeout=timeout, interval=0.1, message="the stack to drain")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last look: {last}") from None
    return time.monotonic() - started


async def run_reconciler(stack: Stack, times: int = 2, timeout: float = 30) -> list[int]:
    """Run the periodic stock reconciler job `times` times in a row through the workers (it repairs
    a drift only when two runs saw the same one); returns how many counters each run repaired."""

    def run_once() -> int:
        client = sync_redis.Redis.from_url(queue_url(stack))
        try:
            job = Queue(queues.MAINTENANCE, connection=client).enqueue("jobs.orders.reconcile_stock", result_ttl=60)
            deadline = time.monotonic() + timeout
            while job.get_status(refresh=True) not in ("finished", "failed"):
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout}s waiting for the reconciler job")
                time.sleep(0.05)
            assert job.get_status() == "finished", f"the reconciler job failed: {job.latest_result()}"
            return int(job.return_value() or 0)
        finally:
            client.close()

    return [await asyncio.to_thread(run_once) for _ in range(times)]


# Checking ------------------------------------------------------------------------------------


async def available(api_url: str, product_id: int, timeout: float = 30) -> int:
    """`available` as a storefront reads it (a missing counter is rebuilt by the read), asked
    again if a request goes unanswered."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            response = await client.post(f"{api_url}/graphql",
                                         json={"query": AVAILABLE, "variables": {"id": product_id}})
            body = response.json() if response.status_code == 200 else {}
            if body.get("data") and not body.get("errors"):
                return int(body["data"]["product"]["available"])
            if time.monotonic() > deadline:
                raise AssertionError(f"product {product_id}: no answer to `available`: {response.text[:300]}")
            await asyncio.sleep(0.1)


async def check_sale(pg: asyncpg.Pool, redis: Any, sale: Sale, *, api_url: str, counters: str = "exact",
                     allow_lost: bool = False, fault_at: float | None = None, stack: Stack | None = None) -> Report:
    """Every invariant of a drained sale. `counters`: "exact" (the Redis counter equals
    product_stock), or "reconcile" (the counter is never above product_stock, and equals it
    once the reconciler has run twice; needs `stack`). `allow_lost`: accepted orders missing from
    PostgreSQL are reported in facts instead of failing (Redis restarted with appendfsync everysec);
    with `fault_at` (wall time of the crash) the facts say how long before it they were answered."""
    report = Report()
    pids = [p.id for p in sale.products]
    initial = {p.id: p.stock for p in sale.products}
    accepted = {a.order_id: a for a in sale.accepted if a.order_id is not None}
    report.facts.update(requests=len(sale.attempts), accepted=len(accepted), refused=dict(sale.refusals()))

    report.expect(not sale.unanswered, "every request got an answer (replayed with its key after the sale)",
                  f"{len(sale.unanswered)} never answered")
    twice = [oid for oid, n in Counter(a.order_id for a in sale.accepted).items() if n > 1]
    report.expect(not twice, "no two requests (keys) were answered with the same order", _sample(twice))

    # Orders and their items in PostgreSQL.
    rows = await pg.fetch(
        "SELECT id::text AS id, count(*) AS n, min(status) AS status, min(cancel_reason) AS reason, "
        "bool_or(needs_refund) AS refund FROM orders WHERE id = ANY($1::uuid[]) GROUP BY id", list(accepted))
    orders = {r["id"]: r for r in rows}
    lost = set(accepted) - set(orders)
    report.facts["lost"] = len(lost)
    if lost and fault_at is not None:
        times = sorted(accepted[oid].answered_at or 0 for oid in lost)
        report.facts["lost were answered (s before the crash)"] = (round(fault_at - times[0], 3),
                                                                   round(fault_at - times[-1], 3))
    if not allow_lost:
        report.expect(not lost, "every order answered PENDING is in PostgreSQL",
                      f"{len(lost)} of {len(accepted)} missing, e.g. {_sample(lost, 3)}")
    doubled = [oid for oid, r in orders.items() if r["n"] != 1]
    report.expect(not doubled, "every accepted order is in PostgreSQL exactly once", _sample(doubled))

    items = await pg.fetch(
        "SELECT i.order_id::text AS oid, i.customer_id AS cid, i.product_id AS pid, i.quantity AS qty, "
        "o.status FROM order_items i JOIN orders o ON o.customer_id = i.customer_id AND o.id = i.order_id "
        "WHERE i.product_id = ANY($1)", pids)
    lines_in_pg: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for item in items:
        lines_in_pg[item["oid"]].append((item["pid"], item["qty"]))
    strangers = set(lines_in_pg) - set(accepted)
    report.expect(not strangers, "no order in PostgreSQL that no client was answered with",
                  f"{len(strangers)}, e.g. {_sample(strangers, 3)}")
    wrong = [oid for oid in orders if sorted(lines_in_pg.get(oid, [])) != sorted(accepted[oid].lines)]
    report.expect(not wrong, "each persisted order holds the lines its buyer asked for", _sample(wrong, 3))

    # Units: accepted minus cancelled == removed from product_stock; never below zero, never beyond stock.
    rows = await pg.fetch("SELECT product_id, stock FROM product_stock WHERE product_id = ANY($1)", pids)
    stock = {r["product_id"]: r["stock"] for r in rows}
    kept: dict[int, int] = defaultdict(int)
    cancelled_units: dict[int, int] = defaultdict(int)
    for oid, row in orders.items():
        for pid, qty in accepted[oid].lines:
            (cancelled_units if row["status"] == "CANCELLED" else kept)[pid] += qty
    removed = {pid: initial[pid] - stock[pid] for pid in pids}
    report.facts["units kept"] = dict(kept)
    report.facts["units cancelled"] = dict(cancelled_units)
    report.expect(all(removed[p] == kept[p] for p in pids),
                  "units accepted minus units of cancelled orders == units removed from product_stock",
                  {p: f"removed {removed[p]}, kept {kept[p]}, cancelled {cancelled_units[p]}" for p in pids
                   if removed[p] != kept[p]})
    report.expect(all(v >= 0 for v in stock.values()), "no negative product_stock", stock)
    sold: dict[int, int] = defaultdict(int)
    per_customer: dict[tuple[int, int], int] = defaultdict(int)
    for item in items:
        if item["status"] != "CANCELLED":
            sold[item["pid"]] += item["qty"]
            per_customer[(item["cid"], item["pid"])] += item["qty"]
    report.expect(all(sold[p] <= initial[p] for p in pids), "no order beyond stock (units not cancelled <= stock)",
                  {p: (sold[p], initial[p]) for p in pids if sold[p] > initial[p]})
    limits = {p.id: p.max_per_customer for p in sale.products if p.max_per_customer is not None}
    over_limit = {k: v for k, v in per_customer.items() if k[1] in limits and v > limits[k[1]]}
    report.expect(not over_limit, "no customer holds more than maxPerCustomer", over_limit)

    # Redis: nothing held; the live counter equals product_stock.
    held = dict(zip(pids, [int(v or 0) for v in await mget(redis, [keys.stock_held(p) for p in pids])], strict=True))
    report.expect(not any(held.values()), "nothing held in Redis after the drain (stock:held:{pid} == 0)", held)
    if counters == "reconcile":
        raw = dict(zip(pids, await mget(redis, [keys.stock(p) for p in pids]), strict=True))
        over = {p: (int(v), stock[p]) for p, v in raw.items() if v is not None and int(v) > stock[p]}
        report.facts["under-counted before reconciling"] = {
            p: stock[p] - int(v) for p, v in raw.items() if v is not None and int(v) < stock[p]}
        report.expect(not over, "the stock counter is never above product_stock (a rebuild may only under-count)",
                      over)
        assert stack is not None
        report.facts["reconciler repaired"] = await run_reconciler(stack)
    live = {p: await available(api_url, p) for p in pids}
    report.expect(live == stock, "available (the Redis counter) == product_stock once nothing is held",
                  {p: f"available {live[p]}, product_stock {stock[p]}" for p in pids if live[p] != stock[p]})
    report.expect(all(v >= 0 for v in live.values()), "no negative available", live)

    # Allowances: a cancelled order gave its units back to its buyer exactly once.
    customers = sorted({a.buyer.customer_id for a in sale.attempts})
    async with redis.pipeline(transaction=False) as pipe:
        for cid in customers:
            pipe.hmget(keys.allowance(cid), [str(p) for p in pids])
            pipe.exists(keys.allowance(cid))
        got = await pipe.execute()
    wrong_allowance = {}
    for i, cid in enumerate(customers):
        values, exists = got[2 * i], got[2 * i + 1]
        if not exists:
            continue  # loaded from PostgreSQL again at the next sign-in
        for pid, value in zip(pids, values, strict=True):
            if int(value or 0) != per_customer.get((cid, pid), 0):
                wrong_allowance[(cid, pid)] = (int(value or 0), per_customer.get((cid, pid), 0))
    report.expect(not wrong_allowance, "each buyer's allowance == units in their orders not cancelled",
                  dict(list(wrong_allowance.items())[:5]))

    # Cancellations a buyer was told about.
    told = [c.order_id for c in sale.cancels if c.cancelled]
    not_cancelled = [oid for oid in told if oid in orders and orders[oid]["status"] != "CANCELLED"]
    report.expect(not not_cancelled, "every cancelOrder answered CANCELLED is CANCELLED in PostgreSQL",
                  _sample(not_cancelled, 3))
    report.facts["cancels"] = dict(Counter("cancelled" if c.cancelled else c.code or "no answer"
                                           for c in sale.cancels))

    await check_webhooks(pg, sale, orders, report, allow_lost=allow_lost)
    return report


async def check_webhooks(pg: asyncpg.Pool, sale: Sale, orders: dict[str, Any], report: Report,
                         allow_lost: bool = False) -> None:
    """No webhook event lost (every event answered 200/202 is stored), each applied once, and
    each order's final state agrees with the events applied to it."""
    answered = [w for w in sale.webhooks if w.status in (200, 202)]
    refused = [(w.event_id, w.status) for w in sale.webhooks if w.status is not None and w.status not in (200, 202)]
    report.facts["webhooks"] = dict(Counter(str(w.status) for w in sale.webhooks))
    report.expect(not refused, "every correctly signed webhook is answered 200 or 202", refused[:5])
    rows = await pg.fetch("SELECT id, order_id, type, state, outcome FROM payment_events WHERE id = ANY($1)",
                          [w.event_id for w in sale.webhooks])
    stored = {r["id"]: r for r in rows}
    missing = [w.event_id for w in answered if w.event_id not in stored]
    report.expect(not missing, "every webhook event answered 200/202 is in payment_events",
                  f"{len(missing)} of {len(answered)}, e.g. {missing[:3]}")
    unapplied = [(r["id"], r["state"]) for r in rows if r["state"] != "applied"
                 and not (allow_lost and r["order_id"] not in orders)]
    report.expect(not unapplied, "every stored event of an existing order is applied", unapplied[:5])

    by_order: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_order[r["order_id"]].append(r)
    inconsistent = []
    for oid, events in by_order.items():
        order = orders.get(oid)
        if order is None:
            continue
        outcomes = Counter((e["type"], e["outcome"]) for e in events if e["state"] == "applied")
        paid = outcomes[("payment.succeeded", "paid")]
        failed_cancel = outcomes[("payment.failed", "cancelled")]
        refund = outcomes[("payment.succeeded", "refund_needed")]
        status, reason, needs_refund = order["status"], order["reason"], order["refund"]
        if status == "PAID":
            ok = paid == 1 and failed_cancel == 0 and not needs_refund
        elif status == "CANCELLED":
            ok = paid == 0 and failed_cancel <= 1 and needs_refund == (refund > 0) \
                and (reason == "PAYMENT_FAILED") == (failed_cancel == 1)
        else:
            ok = not outcomes  # an applied event (right amount) always moves a PENDING order
        if not ok:
            inconsistent.append((oid, status, reason, needs_refund, dict(outcomes)))
    report.expect(not inconsistent, "each order's final state agrees with the events applied to it "
                  "(PAID with one 'paid' event, or CANCELLED with needsRefund iff a success came late)",
                  inconsistent[:5])
