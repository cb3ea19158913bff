"""Scenario 6: the expiry sweeper, payment webhooks and buyers' cancels all racing for the same orders.

Persisted PENDING orders fall due (expires_at moved to the past in PostgreSQL) in waves while
success and failure events for them, duplicates of those events, and cancelOrder calls arrive
at once, with three workers so that expiry, payment jobs and persistence really run side by side,
and the sale goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Coroutine
from typing import Any

import pytest

from tests.chaos.conftest import Scale
from tests.chaos.invariants import check_sale, drain, record
from tests.chaos.sale import Buyer, Sale, SaleMix, SaleProduct, Webhook
from tests.stack import Stack, eventually

pytestmark = pytest.mark.chaos

# What arrives for one order besides its expiry. "again": the previous success event resent at once.
PLANS: list[tuple[str, ...]] = [
    ("success",), ("failure",), ("success", "failure"), ("failure", "success"), ("success", "success"),
    ("success", "again"), ("success", "cancel"), ("failure", "cancel"), ("cancel",), (),
]
WAVES = 4


async def test_expiry_webhooks_and_cancels_racing_end_each_order_once(
    stack: Stack, buyers: list[Buyer], sale_products: list[SaleProduct], scale: Scale, pg: Any, redis: Any
) -> None:
    """Expiry, webhooks and cancels racing over the same orders: one final state each, stock released once."""
    stack.start_worker()
    stack.start_worker()
    rng = random.Random(6)
    mix = SaleMix(cancel_rate=0.0, pay_rate=0.0)  # here the test itself pays and cancels
    async with Sale([stack.base_url], buyers, sale_products, mix=mix, seed=6) as sale:
        await sale.wait_accepted(scale.hammered)
        targets = sale.accepted[: scale.hammered]
        ids = [str(a.order_id) for a in targets]

        async def persisted() -> bool:
            return await pg.fetchval("SELECT count(*) FROM orders WHERE id = ANY($1::uuid[])", ids) == len(ids)

        await eventually(persisted, timeout=60, message="the targeted orders to be persisted")

        actions: list[Coroutine[Any, Any, None]] = []
        resent: list[tuple[Webhook, Webhook]] = []
        plans: dict[str, tuple[str, ...]] = {}
        for attempt in targets:
            plans[str(attempt.order_id)] = plan = rng.choice(PLANS)
            last: Webhook | None = None
            for step in plan:
                if step in ("success", "failure"):
                    last = sale.webhook_for(attempt, "payment.succeeded" if step == "success" else "payment.failed")
                    actions.append(sale.send(last))
                elif step == "again":  # the previous event, sent twice at the same moment
                    assert last is not None
                    again = sale.webhook_for(attempt, last.type, event_id=last.event_id)
                    resent.append((last, again))
                    actions.pop().close()  # the single send of `last`, replaced by the pair
                    actions.append(together(sale.send(last), sale.send(again)))
                else:
                    actions.append(sale.cancel(attempt))
        rng.shuffle(actions)
        waves = [ids[i::WAVES] for i in range(WAVES)]
        hammer_started = time.time()
        await hammer(pg, actions, waves)
        await sale.wait_accepted(max(1, scale.after // 3), since=hammer_started)

    async def settled() -> bool:
        return not await pg.fetchval(
            "SELECT count(*) FROM orders WHERE id = ANY($1::uuid[]) AND status = 'PENDING'", ids)

    drained = await drain(stack, redis, pg, sale, extra=settled)
    report = await check_sale(pg, redis, sale, api_url=stack.base_url)
    final = {r["id"]: (r["status"], r["cancel_reason"], r["needs_refund"]) for r in await pg.fetch(
        "SELECT id::text AS id, status, cancel_reason, needs_refund FROM orders WHERE id = ANY($1::uuid[])", ids)}
    outcomes = Counter(f"{s}{'/' + r if r else ''}{' needsRefund' if n else ''}" for s, r, n in final.values())
    by_plan: dict[str, Counter[str]] = defaultdict(Counter)
    for oid, plan in plans.items():
        by_plan["+".join(plan) or "expiry only"][final[oid][0]] += 1
    duplicate_answers = [sorted([a.status or 0, b.status or 0]) for a, b in resent]
    report.expect(all(pair == [200, 202] for pair in duplicate_answers),
                  "the same event sent twice at once is answered 202 once and 200 once", duplicate_answers[:5])
    expired_only = [oid for oid, plan in plans.items() if not plan and final[oid][:2] != ("CANCELLED", "EXPIRED")]
    report.expect(not expired_only, "an order nobody paid or cancelled is CANCELLED as EXPIRED", expired_only[:5])
    report.facts.update(targets=len(ids), outcomes=dict(outcomes), by_plan={k: dict(v) for k, v in by_plan.items()},
                        drained_in=f"{drained:.1f}s")
    record("expiry x webhooks x cancels", f"{sale.summary()}; {report}")
    assert not report.problems, str(report)


async def together(*actions: Awaitable[None]) -> None:
    await asyncio.gather(*actions)


async def hammer(pg: Any, actions: list[Awaitable[None]], waves: list[list[str]], concurrency: int = 32) -> None:
    """Run the webhook sends and cancels, `concurrency` at a time, making one wave of orders due
    each time another quarter of them has been started, so several expiry sweeps race them."""
    sem = asyncio.Semaphore(concurrency)
    started = 0
    wave_started: list[asyncio.Event] = [asyncio.Event() for _ in waves]
    if not actions:
        for go in wave_started:
            go.set()

    async def one(action: Awaitable[None]) -> None:
        nonlocal started
        async with sem:
            started += 1
            for i in range(len(waves)):
                if started >= (i * len(actions)) // len(waves):
                    wave_started[i].set()
            await action

    async def expire() -> None:
        for wave, go in zip(waves, wave_started, strict=True):
            await go.wait()
            await pg.execute("UPDATE orders SET expires_at = now() - interval '1 second' "
                             "WHERE id = ANY($1::uuid[]) AND status = 'PENDING'", wave)

    await asyncio.gather(expire(), *[one(a) for a in actions])
