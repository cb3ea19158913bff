"""Scenario 1: an RQ worker is killed (SIGKILL) in the middle of persisting a batch during a sale."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis as sync_redis
from rq import Worker

from db import keys
from tests.chaos.conftest import Scale
from tests.chaos.invariants import check_sale, drain, record
from tests.chaos.sale import Buyer, Sale, SaleProduct
from tests.stack import Stack, eventually

pytestmark = pytest.mark.chaos

BATCH = 10  # the victim's batch size: the backlog takes it several transactions
# Every job that persists orders: the payment jobs persist the orders their events need first.
PERSIST_JOBS = {
    "jobs.orders.persist_pending_orders",
    "jobs.orders.sweep_unpersisted_orders",
    "jobs.payments.apply_queued_payments",
    "jobs.payments.apply_payment_event",
    "jobs.payments.sweep_payment_events",
}


def persisting_job(redis_url: str, pid: int) -> str | None:
    """The id of the persistence job the worker with this pid is running (or was, when it died), if any."""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        for worker in Worker.all(connection=client):
            if worker.pid == pid:
                job = worker.get_current_job()
                if job is not None and job.func_name in PERSIST_JOBS:
                    return str(job.id)
        return None
    finally:
        client.close()


async def test_worker_killed_mid_batch_loses_and_doubles_nothing(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], scale: Scale, pg: Any, redis: Any
) -> None:
    """kill -9 of the only worker inside a batch's transaction, then a new worker: every answered order lands once."""
    stack.stop_workers()
    pids = [p.id for p in sale_products]
    async with Sale([stack.base_url], buyers, sale_products, seed=1) as sale:
        # No worker for a while: a backlog builds up, as in a burst that outruns persistence.
        await sale.wait_accepted(scale.before)
        backlog = [str(a.order_id) for a in sale.accepted]
        victim = stack.start_worker(PERSIST_BATCH_SIZE=str(BATCH))
        seen: dict[str, Any] = {}

        async def first_batches() -> bool:
            # Ids leave their buckets' orders:topersist batch by batch as the victim commits them.
            async with redis.pipeline(transaction=False) as pipe:
                for order_id in backlog:
                    pipe.zscore(keys.orders_to_persist_of(order_id), order_id)
                left = sum(score is not None for score in await pipe.execute())
            seen["persisted"] = len(backlog) - left
            return seen["persisted"] >= BATCH

        await eventually(first_batches, timeout=60, interval=0.002, message="the worker's first batches")
        async with pg.acquire() as gate:
            # KEY SHARE on the sale's stock rows lets everything through but FOR UPDATE: the victim's
            # next batch inserts its orders and then waits, inside its transaction, to lock those rows.
            async with gate.transaction():
                await gate.execute("SELECT 1 FROM product_stock WHERE product_id = ANY($1) FOR KEY SHARE", pids)
                gate_pid = await gate.fetchval("SELECT pg_backend_pid()")

                async def mid_batch() -> bool:
                    seen["job"] = await asyncio.to_thread(persisting_job, stack.redis_url, victim.pid)
                    seen["blocked"] = await pg.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) "
                        "AND backend_xid IS NOT NULL", gate_pid)
                    return seen["job"] is not None and seen["blocked"] > 0

                try:
                    await eventually(mid_batch, timeout=60, interval=0.01, message="the worker to be mid-batch")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; last look: {seen}, worker exit code {victim.poll()}") from None
                stack.kill_worker(victim)
                killed_at = time.time()
                await first_batches()  # how much of the backlog was committed at the kill
        stack.start_worker()
        await sale.wait_accepted(scale.after, since=killed_at)
    drained = await drain(stack, redis, pg, sale)
    # "reconcile", not "exact": the new worker's reconciler runs can take units held by the killed
    # worker's committed batch off sale (see test_reconciler_after_crash); the counter must still
    # never be above product_stock, and equal it once the reconciler has run with nothing in flight.
    report = await check_sale(pg, redis, sale, api_url=stack.base_url, counters="reconcile", stack=stack)
    report.facts.update(killed_job=seen["job"], backlog=len(backlog), persisted_at_kill=seen["persisted"],
                        drained_in=f"{drained:.1f}s")
    record("worker kill -9", f"{sale.summary()}; {report}")
    assert not report.problems, str(report)
