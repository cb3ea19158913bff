"""Scenario 5: PostgreSQL crashes (pg_ctl stop -m immediate) mid-sale and is started again in place."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis as sync_redis
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from db.order_persistence import backlog
from jobs import queues
from tests.chaos.conftest import Scale
from tests.chaos.invariants import check_sale, drain, record
from tests.chaos.sale import Buyer, Sale, SaleProduct
from tests.stack import Stack, eventually

pytestmark = pytest.mark.chaos


def failed_or_retrying(redis_url: str) -> int:
    """Jobs of the orders queue that failed, or wait in RQ's scheduler for a retry."""
    client = sync_redis.Redis.from_url(redis_url)
    try:
        queue = Queue(queues.ORDERS, connection=client)
        return FailedJobRegistry(queue=queue).count + ScheduledJobRegistry(queue=queue).count
    finally:
        client.close()


async def test_postgres_crash_mid_sale_buying_goes_on_and_persistence_retries(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], scale: Scale, pg: Any, redis: Any
) -> None:
    """PostgreSQL down mid-sale: buying goes on from Redis, persistence is retried, nothing is lost or doubled."""
    if stack.postgres is None:
        pytest.skip("PostgreSQL is not embedded (DATABASE_URL is set): it cannot be restarted here")
    failures_before = await asyncio.to_thread(failed_or_retrying, stack.redis_url)
    async with Sale([stack.base_url], buyers, sale_products, seed=5) as sale:
        await sale.wait_accepted(scale.before)
        stack.stop_postgres("immediate")
        down_at = time.time()
        try:
            # Buyers keep being answered from Redis while persistence fails.
            await sale.wait_accepted(max(1, scale.before // 2), since=down_at)

            async def persistence_failed() -> bool:
                return await asyncio.to_thread(failed_or_retrying, stack.redis_url) > failures_before

            await eventually(persistence_failed, timeout=30, message="a persistence job to fail")
            accepted_while_down = sale.accepted_since(down_at)
            backlog_at_restart = await backlog(redis)
        finally:
            stack.start_postgres()
        up_at = time.time()
        await sale.wait_accepted(scale.after, since=up_at)
    drained = await drain(stack, redis, pg, sale)
    report = await check_sale(pg, redis, sale, api_url=stack.base_url)
    report.facts.update(postgres_down_for=f"{up_at - down_at:.1f}s", accepted_while_down=accepted_while_down,
                        backlog_at_restart=backlog_at_restart, drained_in=f"{drained:.1f}s")
    record("PostgreSQL crash", f"{sale.summary()}; {report}")
    assert accepted_while_down > 0
    assert not report.problems, str(report)
