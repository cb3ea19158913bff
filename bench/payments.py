"""A burst of payment webhooks: `python -m bench.payments [--orders 2000] [--buyers 40] [--workers 1]`.

Starts its own stack (bench.stack, under .data/bench-payments), places the orders, then sends one
signed `payment.succeeded` webhook per order, all at once, and prints one JSON line: the 202's
latency and the time from each 202 until PostgreSQL shows the order PAID (polled every 50 ms),
p50/p99/max, and how many RQ jobs applied the events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis

from bench.seed import STAFF_EMAIL, STAFF_PASSWORD, GraphQL, create_product, register_buyers, staff_token
from bench.stack import ROOT, BenchStack
from bench.watchers import percentile
from db.engine import asyncpg_dsn
from server.webhooks import sign

PLACE = ("mutation($l: [OrderLineInput!]!, $k: String!) { placeOrder(lines: $l, idempotencyKey: $k) "
         "{ order { id totalCents } errors { code message } } }")
POLL_SECONDS = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--buyers", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100, help="webhooks in flight at once")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for every order to be PAID")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-payments")
    return parser.parse_args(argv)


async def place_orders(api: GraphQL, tokens: list[str], product_id: int, count: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(32)

    async def place(i: int) -> dict[str, Any]:
        async with gate:
            data = await api(PLACE, tokens[i % len(tokens)], l=[{"productId": str(product_id), "quantity": 1}],
                             k=uuid.uuid4().hex)
        return dict(data["placeOrder"]["order"])

    return list(await asyncio.gather(*[place(i) for i in range(count)]))


def payment_jobs(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sum(1 for key in client.scan_iter(match="rq:job:*", count=1000)
                   if client.type(key) == "hash"
                   and (client.hget(key, "description") or "").startswith("jobs.payments.apply"))
    finally:
        client.close()


async def burst(stack: BenchStack, url: str, args: argparse.Namespace) -> dict[str, Any]:
    secret = stack.env["PAYMENT_WEBHOOK_SECRET"]
    async with httpx.AsyncClient(timeout=120) as client:
        api = GraphQL(client, f"{url}/graphql")
        token = await staff_token(api)
        product_id = await create_product(api, token, f"pay-{uuid.uuid4().hex[:8]}", args.orders * 2, None)
        buyers = await register_buyers([api], args.buyers, f"payer-{uuid.uuid4().hex[:8]}", 8)
        orders = await place_orders(api, [b.token for b in buyers], product_id, args.orders)
    ids = [o["id"] for o in orders]
    accepted: dict[str, float] = {}
    paid: dict[str, float] = {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pool = await asyncpg.create_pool(asyncpg_dsn(stack.database_url), min_size=1, max_size=2)
    jobs_before = payment_jobs(stack.redis_url)

    async def poll() -> None:
        deadline = time.monotonic() + args.timeout
        while len(paid) < len(ids) and time.monotonic() < deadline:
            rows = await pool.fetch("SELECT id::text FROM orders WHERE id = ANY($1::uuid[]) AND status = 'PAID'", ids)
            now = time.time()
            for row in rows:
                paid.setdefault(row["id"], now)
            await asyncio.sleep(POLL_SECONDS)

    gate = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def send(order: dict[str, Any]) -> None:
            body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "payment.succeeded",
                               "created": int(time.time()), "data": {"order_id": order["id"], "currency": "USD",
                                                                     "amount_cents": order["totalCents"]}}).encode()
            async with gate:
                started = time.time()
                response = await client.post(f"{url}/webhooks/payments", content=body,
                                             headers={"Content-Type": "application/json",
                                                      "Payment-Signature": sign(secret, body)})
                done = time.time()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            latencies.append(done - started)
            accepted[order["id"]] = done

        poller = asyncio.create_task(poll())
        sent_at = time.monotonic()
        await asyncio.gather(*[send(o) for o in orders])
        burst_seconds = time.monotonic() - sent_at
        await poller
    await pool.close()
    to_paid = [paid[i] - accepted[i] for i in ids if i in paid and i in accepted]
    return {
        "webhooks": len(orders),
        "statuses": statuses,
        "burst_seconds": round(burst_seconds, 2),
        "accept_ms": {"p50": round(percentile(latencies, 0.5) * 1000, 1),
                      "p99": round(percentile(latencies, 0.99) * 1000, 1)},
        "paid": len(paid),
        "to_paid_ms": {"p50": round(percentile(to_paid, 0.5) * 1000), "p99": round(percentile(to_paid, 0.99) * 1000),
                       "max": round(max(to_paid, default=0) * 1000)},
        "payment_jobs": payment_jobs(stack.redis_url) - jobs_before,
        "workers": args.workers,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = BenchStack(args.data_dir)
    try:
        stack.start_storage()
        stack.run_cli("user", "create", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD, "--staff")
        port = stack.start_servers(["rushcart"], 1)["rushcart"][0]
        stack.start_workers(args.workers)
        result = asyncio.run(burst(stack, f"http://127.0.0.1:{port}", args))
    finally:
        stack.stop()
    print(json.dumps(result), flush=True)
    return 0 if result["paid"] == result["webhooks"] else 1


if __name__ == "__main__":
    sys.exit(main())
