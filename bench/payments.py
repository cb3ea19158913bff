"""A burst of payment webhooks as the shoppers see it: PAID delivered to each order's subscriber.

Part of `python -m bench.run` (`--payments N`), or alone: `python -m bench.payments [--orders 2000]`
(its own stack, under `.data/bench-payments`). On the rushcart API processes, with the workers running:

1. N orders of one unit, placed through `placeOrder` by the registered buyers, and persisted by the
   workers (the burst then measures the payment path, not the persistence of the orders);
2. each order's owner subscribes to `orderStatus(orderId)` over graphql-transport-ws, from
   separate processes (bench.order_watchers), spread over the API processes, and gets PENDING;
3. one signed `payment.succeeded` webhook per order, all at once (`concurrency` in flight over
   keep-alive connections spread over the API processes): each 202's latency and the wall-clock
   time it arrived;
4. every subscriber's clock when PAID reached it, minus its order's 202: the delay a shopper sees.
   The event's `at` (when the transaction that paid the order began) splits it into the wait until
   that transaction and the rest (commit, publish, fan-out, the client);
5. the RQ payment jobs that ran meanwhile (how many, what each applied, what the sweeper applied
   late), the transactions that applied the events (events of one transaction share its
   `applied_at`), and the invariants in PostgreSQL: every order PAID, exactly one payment event
   row per webhook, applied as `paid`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from redis.asyncio import Redis
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from bench.client import HttpError, RawConnection
from bench.invariants import Check, Checked
from bench.live import Crowd
from bench.report import fmt, percentile
from bench.seed import STAFF_EMAIL, STAFF_PASSWORD, Buyer, GraphQL, create_product, register_buyers, staff_token
from bench.stack import ROOT, BenchStack, StackError, process_cpu
from db import keys
from db.engine import asyncpg_dsn
from jobs import queues
from server.webhooks import sign

GOAL_P99_MS = 2000.0
PLACE = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         "{ order { id totalCents } errors { code message } } }")
APPLY_JOB = "jobs.payments.apply_queued_payments"
SWEEP_JOB = "jobs.payments.sweep_payment_events"


@dataclass(frozen=True)
class PaymentSetting:
    stack: BenchStack
    run_id: str
    ports: list[int]  # the rushcart API processes: orders, subscribers and webhooks are spread over them
    staff_token: str
    buyers: list[Buyer]
    webhooks: int
    concurrency: int  # webhooks in flight
    subscriber_processes: int
    timeout: float  # seconds to wait for every PAID after the burst


@dataclass(frozen=True)
class Order:
    id: str
    total_cents: int
    token: str  # its owner's


@dataclass
class PaymentRun(Checked):
    webhooks: int
    api_processes: int
    concurrency: int  # webhooks in flight
    subscriber_processes: int
    statuses: dict[str, int]  # HTTP status of the webhook answers (or the transport error)
    burst_s: float  # from the first webhook sent until the last answer
    accept_p50_ms: float
    accept_p99_ms: float
    subscribers: int
    subscribed: int  # subscribers whose first answer was PENDING
    subscriber_errors: int
    connect_s: float
    delivered: int  # subscribers that received PAID
    duplicates: int  # PAID received twice by one subscriber (must be 0)
    delivered_p50_ms: float  # the subscriber's clock at PAID minus its order's 202
    delivered_p99_ms: float
    delivered_max_ms: float
    to_transaction_p50_ms: float  # the event's `at` (the paying transaction's start) minus the 202
    to_transaction_p99_ms: float
    after_transaction_p50_ms: float  # receipt minus `at`: commit, publish, fan-out, the client
    after_transaction_p99_ms: float
    last_delivered_s: float  # from the first webhook sent until the last PAID arrived
    apply_jobs: int  # drain jobs that finished during the burst
    apply_jobs_applying: int  # of them, those that applied at least one event
    applied_by_jobs: int  # events they applied
    sweeps: int
    applied_by_sweeper: int  # events the sweeper found late and applied
    failed_jobs: int
    transactions: int  # distinct applied_at of the events: transactions that applied them
    api_cpu_s: float  # from the first webhook until the last PAID
    worker_cpu_s: float
    redis_cpu_s: float
    subscriber_cpu_pct: float  # the subscriber processes, in % of one core over the same time
    sender_cpu_pct: float  # this process (the webhook sender), the same
    checks: list[Check] = field(default_factory=list)

    @property
    def goal_met(self) -> bool:
        return self.delivered == self.webhooks and self.delivered_p99_ms < GOAL_P99_MS

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "goal_met": self.goal_met}


def say_nothing(message: str) -> None:
    pass


async def place_orders(api_urls: list[str], buyers: list[Buyer], product_id: int, count: int) -> list[Order]:
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=120) as client:
        apis = [GraphQL(client, url) for url in api_urls]

        async def place(i: int) -> Order:
            buyer = buyers[i % len(buyers)]
            async with gate:
                data = await apis[i % len(apis)](PLACE, buyer.token, l=[{"productId": str(product_id), "quantity": 1}],
                                                 k=uuid.uuid4().hex)
            payload = data["placeOrder"]
            if payload.get("errors") or not payload.get("order"):
                raise StackError(f"placeOrder failed: {payload.get('errors')}")
            return Order(str(payload["order"]["id"]), int(payload["order"]["totalCents"]), buyer.token)

        return list(await asyncio.gather(*[place(i) for i in range(count)]))


async def wait_persisted(r: Redis, pg: asyncpg.Pool, orders: list[Order], timeout: float) -> None:
    ids = [o.id for o in orders]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await r.zcard(keys.ORDERS_TO_PERSIST):
            found = await pg.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])", ids)
            if found == len(ids):
                return
        await asyncio.sleep(0.1)
    raise StackError(f"the {len(ids):,} orders of the payment burst were not persisted within {timeout:.0f}s")


def _job_ids(conn: redis.Redis) -> set[str]:
    return set(FinishedJobRegistry(queues.PAYMENTS, connection=conn).get_job_ids())


def _payment_jobs_running(conn: redis.Redis) -> bool:
    return bool(StartedJobRegistry(queues.PAYMENTS, connection=conn).get_job_ids())


def _jobs_since(conn: redis.Redis, before: set[str]) -> list[tuple[str, int]]:
    """(function, return value) of the payment-queue jobs finished since `before` was taken."""
    jobs = Job.fetch_many(sorted(_job_ids(conn) - before), connection=conn)
    return [(job.func_name, int(job.return_value() or 0)) for job in jobs if job is not None]


class Sender:
    """The burst: every webhook built and signed up front, then sent over `concurrency` connections."""

    def __init__(self, ports: list[int], secret: str, orders: list[Order], concurrency: int) -> None:
        self.ports = ports
        self.concurrency = concurrency
        created = int(time.time())
        self.requests = []
        for order in orders:
            event_id = f"evt_{uuid.uuid4().hex}"
            body = json.dumps({"id": event_id, "type": "payment.succeeded", "created": created,
                               "data": {"order_id": order.id, "currency": "USD",
                                        "amount_cents": order.total_cents}}).encode()
            self.requests.append((order.id, event_id, body, {"Payment-Signature": sign(secret, body)}))
        self.answered: dict[str, float] = {}  # order id -> wall-clock time of its 202
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}

    async def send(self) -> None:
        queue = iter(self.requests)

        async def connection(i: int) -> None:
            conn = RawConnection("127.0.0.1", self.ports[i % len(self.ports)])
            try:
                for order_id, _, body, headers in queue:
                    started = time.perf_counter()
                    try:
                        status, _ = await conn.post("/webhooks/payments", body, headers)
                    except HttpError as exc:
                        self.statuses[str(exc)] = self.statuses.get(str(exc), 0) + 1
                        continue
                    done = time.time()
                    self.latencies.append(time.perf_counter() - started)
                    self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
                    if status == 202:
                        self.answered[order_id] = done
            finally:
                await conn.close()

        await asyncio.gather(*(connection(i) for i in range(self.concurrency)))

    @property
    def event_ids(self) -> list[str]:
        return [event_id for _, event_id, _, _ in self.requests]


async def _finish_crowd(crowd: Crowd, timeout: float) -> list[dict[str, Any]]:
    """Each subscriber process reports by itself once all its subscribers got PAID; after `timeout`
    it is told to report what it has."""
    pending = [asyncio.ensure_future(crowd.next_line(p)) for p in crowd.processes]
    done, _ = await asyncio.wait(pending, timeout=timeout)
    if len(done) < len(pending):
        for process in crowd.processes:
            assert process.stdin is not None
            process.stdin.close()
    return list(await asyncio.wait_for(asyncio.gather(*pending), timeout=60))


async def _invariants(pg: asyncpg.Pool, orders: list[Order], event_ids: list[str]) -> list[Check]:
    ids = [o.id for o in orders]
    paid = await pg.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[]) AND status = 'PAID'", ids)
    rows, distinct = await pg.fetchrow(
        "SELECT count(*), count(DISTINCT id) FROM payment_events WHERE order_id = ANY($1::text[])", ids)
    applied = await pg.fetchval(
        "SELECT count(*) FROM payment_events WHERE id = ANY($1::text[]) AND state = 'applied' AND outcome = 'paid'",
        event_ids)
    n = len(ids)
    return [
        Check("every order PAID in PostgreSQL", paid == n, f"{paid:,} of {n:,} PAID"),
        Check("one payment event row per webhook", rows == n and distinct == n,
              f"{rows:,} rows ({distinct:,} distinct) for {n:,} webhooks"),
        Check("every event applied as paid", applied == n, f"{applied:,} of {n:,} applied with outcome 'paid'"),
    ]


async def measure(s: PaymentSetting, say: Any = say_nothing) -> PaymentRun:
    stack = s.stack
    api_urls = [f"http://127.0.0.1:{port}/graphql" for port in s.ports]
    async with httpx.AsyncClient(timeout=60) as client:
        product = await create_product(GraphQL(client, api_urls[0]), s.staff_token, f"PAY-{s.run_id}",
                                       s.webhooks + 100, None)
    started = time.monotonic()
    orders = await place_orders(api_urls, s.buyers, product, s.webhooks)
    r = Redis.from_url(stack.redis_url)
    conn = redis.Redis.from_url(stack.redis_url)
    pg = await asyncpg.create_pool(asyncpg_dsn(stack.database_url), min_size=1, max_size=2)
    crowd = Crowd(stack.data_dir / "runs", f"payments-{s.run_id}")
    try:
        await wait_persisted(r, pg, orders, 120)
        say(f"  {len(orders):,} orders placed and persisted in {time.monotonic() - started:.1f}s")

        # The subscribers: one connection per order, its owner's, spread over processes and ports.
        work = crowd.work
        work.mkdir(parents=True, exist_ok=True)
        processes = max(1, min(s.subscriber_processes, len(orders)))
        commands, received_files = [], []
        for p in range(processes):
            mine = [{"url": f"ws://127.0.0.1:{s.ports[i % len(s.ports)]}/graphql", "orderId": o.id, "token": o.token}
                    for i, o in enumerate(orders) if i % processes == p]
            subscribers, received = work / f"{crowd.name}-{p}-subscribers.json", work / f"{crowd.name}-{p}-paid.json"
            subscribers.write_text(json.dumps(mine))
            received.unlink(missing_ok=True)
            received_files.append(received)
            commands.append(["bench.order_watchers", str(subscribers), str(received)])
        lines = await crowd.spawn(commands, timeout=60 + len(orders) / 50)
        subscribed = sum(int(line["pending"]) for line in lines)
        connect_errors = sum(int(line["errors"]) for line in lines)
        connect_s = max(float(line["connect_seconds"]) for line in lines)
        say(f"  {subscribed:,} of {len(orders):,} owners subscribed to orderStatus in {connect_s:.1f}s")
        if subscribed != len(orders):
            raise StackError(f"only {subscribed:,} of {len(orders):,} subscribers got PENDING first "
                             f"({connect_errors} errors)")

        sender = Sender(s.ports, stack.env["PAYMENT_WEBHOOK_SECRET"], orders, s.concurrency)
        jobs_before = _job_ids(conn)
        cpu_before = {kind: stack.cpu_seconds(kind) for kind in ("rushcart", "worker", "redis")}
        me_before = process_cpu(os.getpid())
        sent_at_wall, sent_at = time.time(), time.monotonic()
        await sender.send()
        burst_s = time.monotonic() - sent_at
        finals = await _finish_crowd(crowd, s.timeout)
        window = time.monotonic() - sent_at
        cpu = {kind: stack.cpu_seconds(kind) - before for kind, before in cpu_before.items()}
        # Each subscriber process reports its own CPU: it may be gone from /proc by now.
        crowd_cpu = sum(float(f["cpu_seconds"]) - float(r["cpu_seconds"]) for f, r in zip(finals, lines, strict=True))
        my_cpu = process_cpu(os.getpid()) - me_before
        received_at: dict[str, list[float]] = {}
        for path in received_files:
            received_at.update(json.loads(path.read_text()))

        # A sweep or drain still running may yet apply some of these events: let it finish first.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not _payment_jobs_running(conn):
                break
            await asyncio.sleep(0.1)
        jobs = _jobs_since(conn, jobs_before)
        failed_jobs = len(FailedJobRegistry(queues.PAYMENTS, connection=conn).get_job_ids())
        checks = await _invariants(pg, orders, sender.event_ids)
        transactions = int(await pg.fetchval(
            "SELECT count(DISTINCT applied_at) FROM payment_events WHERE id = ANY($1::text[])", sender.event_ids))
    finally:
        await crowd.kill()
        await pg.close()
        await r.aclose()
        conn.close()

    both = [(received_at[oid], sender.answered[oid]) for oid in received_at if oid in sender.answered]
    delivered = [(got - answered) * 1000 for (got, _), answered in both]
    to_tx = [(at - answered) * 1000 for (_, at), answered in both]
    after_tx = [(got - at) * 1000 for (got, at), _ in both]
    apply_jobs = [value for name, value in jobs if name == APPLY_JOB]
    sweeps = [value for name, value in jobs if name == SWEEP_JOB]
    statuses = dict(sorted(sender.statuses.items()))
    n = len(orders)
    subscriber_errors = connect_errors + sum(int(line["errors"]) for line in finals)
    duplicates = sum(int(line["duplicates"]) for line in finals)
    checks = [
        Check("every webhook answered 202", statuses == {"202": n}, f"{statuses}"),
        Check("PAID delivered to every subscriber", len(received_at) == n and not duplicates,
              f"{len(received_at):,} of {n:,} delivered, {duplicates} twice"),
        Check("no subscriber broke", subscriber_errors == 0,
              f"{subscriber_errors} errors: {[e for line in finals for e in line['first_errors']][:3]}"),
        *checks,
    ]
    return PaymentRun(
        webhooks=n, api_processes=len(s.ports), concurrency=s.concurrency, subscriber_processes=processes,
        statuses=statuses, burst_s=burst_s,
        accept_p50_ms=percentile(sender.latencies, 50) * 1000, accept_p99_ms=percentile(sender.latencies, 99) * 1000,
        subscribers=n, subscribed=subscribed, subscriber_errors=subscriber_errors, connect_s=connect_s,
        delivered=len(received_at), duplicates=duplicates,
        delivered_p50_ms=percentile(delivered, 50), delivered_p99_ms=percentile(delivered, 99),
        delivered_max_ms=max(delivered, default=float("nan")),
        to_transaction_p50_ms=percentile(to_tx, 50), to_transaction_p99_ms=percentile(to_tx, 99),
        after_transaction_p50_ms=percentile(after_tx, 50), after_transaction_p99_ms=percentile(after_tx, 99),
        last_delivered_s=max((got for got, _ in received_at.values()), default=sent_at_wall) - sent_at_wall,
        apply_jobs=len(apply_jobs), apply_jobs_applying=sum(1 for v in apply_jobs if v),
        applied_by_jobs=sum(apply_jobs), sweeps=len(sweeps), applied_by_sweeper=sum(sweeps), failed_jobs=failed_jobs,
        transactions=transactions, api_cpu_s=cpu["rushcart"], worker_cpu_s=cpu["worker"], redis_cpu_s=cpu["redis"],
        subscriber_cpu_pct=100 * crowd_cpu / window, sender_cpu_pct=100 * my_cpu / window, checks=checks,
    )


ROWS: list[tuple[str, str, int]] = [
    ("webhooks answered 202", "statuses.202", 0),
    ("burst sent in (s)", "burst_s", 2),
    ("202 latency p50 (ms)", "accept_p50_ms", 1),
    ("202 latency p99 (ms)", "accept_p99_ms", 1),
    ("subscribers with PENDING before the burst", "subscribed", 0),
    ("subscribers' connect time (s)", "connect_s", 1),
    ("PAID delivered", "delivered", 0),
    ("202 to PAID delivered p50 (ms)", "delivered_p50_ms", 0),
    ("202 to PAID delivered p99 (ms)", "delivered_p99_ms", 0),
    ("202 to PAID delivered max (ms)", "delivered_max_ms", 0),
    ("  202 to the paying transaction p50 (ms)", "to_transaction_p50_ms", 0),
    ("  202 to the paying transaction p99 (ms)", "to_transaction_p99_ms", 0),
    ("  transaction to delivered p50 (ms)", "after_transaction_p50_ms", 0),
    ("  transaction to delivered p99 (ms)", "after_transaction_p99_ms", 0),
    ("last PAID after the first webhook (s)", "last_delivered_s", 2),
    ("payment drain jobs (that applied any)", "apply_jobs", 0),
    ("events applied by drain jobs", "applied_by_jobs", 0),
    ("transactions that applied them", "transactions", 0),
    ("sweeper runs (events it applied late)", "sweeps", 0),
    ("failed payment jobs", "failed_jobs", 0),
    ("API CPU, burst to last PAID (s)", "api_cpu_s", 1),
    ("worker CPU, the same (s)", "worker_cpu_s", 1),
    ("Redis CPU, the same (s)", "redis_cpu_s", 2),
    ("subscribers' CPU (% of a core)", "subscriber_cpu_pct", 0),
    ("webhook sender's CPU (% of a core)", "sender_cpu_pct", 0),
]
LABEL_WIDTH = max(len(label) for label, _, _ in ROWS) + 1


def _value(run: PaymentRun, path: str) -> float:
    name, _, key = path.partition(".")
    value = getattr(run, name)
    return float(value.get(key, 0) if key else value)


def section(run: PaymentRun) -> list[str]:
    lines = [f"payment burst: {run.webhooks:,} signed payment.succeeded webhooks at once ({run.concurrency} in "
             f"flight over {run.api_processes} API processes), each order's owner subscribed to orderStatus "
             f"before (graphql-transport-ws, {run.subscriber_processes} processes):"]
    for label, path, digits in ROWS:
        cell = fmt(_value(run, path), digits)
        if path == "apply_jobs":
            cell = f"{run.apply_jobs:,} ({run.apply_jobs_applying:,})"
        elif path == "sweeps":
            cell = f"{run.sweeps:,} ({run.applied_by_sweeper:,})"
        lines.append(f"{label:<{LABEL_WIDTH}}{cell:>14}")
    lines.append(f"{'invariants':<{LABEL_WIDTH}}{'ok' if run.ok else 'VIOLATED':>14}")
    lines.append(f"goal: PAID delivered to every subscriber, p99 under {GOAL_P99_MS / 1000:g} s from the 202: "
                 f"{'met' if run.goal_met else 'not met'} ({run.delivered:,} of {run.webhooks:,} delivered, "
                 f"p99 {run.delivered_p99_ms:,.0f} ms)")
    return lines


def violations(run: PaymentRun | None) -> list[str]:
    return [] if run is None else [f"payments: {c.name}: {c.detail}" for c in run.checks if not c.ok]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="orders, one webhook each")
    parser.add_argument("--buyers", type=int, default=40, help="buyers placing them (argon2: ~0.1 s of CPU each)")
    parser.add_argument("--processes", type=int, default=2, help="API server processes")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--concurrency", type=int, default=100, help="webhooks in flight at once")
    parser.add_argument("--subscriber-processes", type=int, default=2, help="processes the subscribers are spread over")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for every PAID after the burst")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "bench-payments")
    args = parser.parse_args(argv)
    for name in ("orders", "buyers", "processes", "workers", "concurrency", "subscriber_processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


async def _standalone(stack: BenchStack, ports: list[int], args: argparse.Namespace, run_id: str) -> PaymentRun:
    async with httpx.AsyncClient(timeout=120) as client:
        apis = [GraphQL(client, f"http://127.0.0.1:{port}/graphql") for port in ports]
        token = await staff_token(apis[0])
        buyers = await register_buyers(apis, args.buyers, f"payer-{run_id}", 8)
    setting = PaymentSetting(stack=stack, run_id=run_id, ports=ports, staff_token=token, buyers=buyers,
                             webhooks=args.orders, concurrency=args.concurrency,
                             subscriber_processes=args.subscriber_processes, timeout=args.timeout)
    run = await measure(setting, lambda m: print(m, file=sys.stderr, flush=True))
    for line in section(run):
        print(line)
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = BenchStack(args.data_dir)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    try:
        stack.start_storage()
        stack.run_cli("user", "create", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD, "--staff")
        ports = stack.start_servers(["rushcart"], args.processes)["rushcart"]
        stack.start_workers(args.workers)
        run = asyncio.run(_standalone(stack, ports, args, run_id))
    finally:
        stack.stop()
    print(json.dumps(run.to_json()), flush=True)
    for problem in violations(run):
        print(f"INVARIANT VIOLATED: {problem}", file=sys.stderr)
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
