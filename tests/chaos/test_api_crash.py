"""Scenario 2: one of two API processes is killed (SIGKILL) during a sale."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.chaos.conftest import Scale
from tests.chaos.invariants import check_sale, drain, record
from tests.chaos.sale import Buyer, Sale, SaleProduct
from tests.stack import Stack, kill_process_tree

pytestmark = pytest.mark.chaos


async def test_api_process_killed_buyers_carry_on_through_the_other(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], scale: Scale, pg: Any, redis: Any
) -> None:
    """kill -9 of one of two API processes mid-sale: buyers go on through the other; every answered order lands once."""
    second = stack.start_extra_server()
    async with Sale([stack.base_url, second.base_url], buyers, sale_products, seed=2) as sale:
        await sale.wait_accepted(scale.before)
        kill_process_tree(second.process)
        killed_at = time.time()
        await sale.wait_accepted(scale.after, since=killed_at)
    drained = await drain(stack, redis, pg, sale)
    report = await check_sale(pg, redis, sale, api_url=stack.base_url)
    report.facts.update(accepted_after_kill=sale.accepted_since(killed_at), drained_in=f"{drained:.1f}s")
    record("API kill -9", f"{sale.summary()}; {report}")
    assert not report.problems, str(report)
