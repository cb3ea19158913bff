"""Scenario 3: Redis loses the stock counters (every `stock:{pid}` key deleted) while orders flow."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.chaos.conftest import Scale
from tests.chaos.invariants import check_sale, drain, record
from tests.chaos.sale import Buyer, Sale, SaleProduct
from tests.stack import Stack

pytestmark = pytest.mark.chaos

COUNTER = re.compile(r"^stock:\{p\d+\}$")  # not stock:held:* nor stock:drift:*


async def delete_counters(redis: Any) -> int:
    """DEL every stock counter, as a partial loss of Redis data would; returns how many there were."""
    counters = [key async for key in redis.scan_iter(match="stock:*", count=1000) if COUNTER.match(key)]
    return int(await redis.delete(*counters)) if counters else 0


async def test_counters_lost_while_buying_are_rebuilt_without_overselling(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], scale: Scale, pg: Any, redis: Any
) -> None:
    """Every stock counter deleted three times mid-sale: rebuilt from PostgreSQL, never above it, nothing oversold."""
    deleted = []
    async with Sale([stack.base_url], buyers, sale_products, seed=3) as sale:
        await sale.wait_accepted(scale.before)
        for _ in range(3):
            deleted.append(await delete_counters(redis))
            await sale.wait_accepted(max(1, scale.after // 3), since=time.time())
    drained = await drain(stack, redis, pg, sale)
    report = await check_sale(pg, redis, sale, api_url=stack.base_url, counters="reconcile", stack=stack)
    report.facts.update(counters_deleted=deleted, drained_in=f"{drained:.1f}s")
    record("stock counters DEL", f"{sale.summary()}; {report}")
    assert all(deleted), "there were counters to delete"
    assert not report.problems, str(report)
