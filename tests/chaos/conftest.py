"""Chaos tests: a sale with a crowd of buyers while a service is killed or restarted.

They kill and restart the stack's own services, so they run in a pytest invocation of their own
(`pytest tests/chaos`), with a stack of their own. Collected together with other tests (plain
`pytest`), they are deselected unless `-m` names them.

CHAOS_SCALE=short (default: all scenarios in about two minutes on two cores) or full (hundreds
of buyers, longer sales).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from db import keys
from tests.chaos.sale import Buyer, SaleProduct, register_buyers, sign_in_again
from tests.conftest import unique
from tests.stack import Stack, kill_process_tree


@dataclass(frozen=True)
class Scale:
    name: str
    buyers: int  # concurrent buyers, each a registered customer
    register_concurrency: int
    before: int  # orders accepted before the failure is injected
    after: int  # orders accepted after recovery before the sale stops
    scarce_stock: int  # a product that sells out during the sale
    hammered: int  # orders that expiry, webhooks and cancels race for (scenario 6)


SCALES = {
    "short": Scale("short", buyers=80, register_concurrency=4, before=120, after=120, scarce_stock=100,
                   hammered=100),
    "full": Scale("full", buyers=300, register_concurrency=4, before=1500, after=1500, scarce_stock=1200,
                  hammered=600),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: kills or restarts a service during a sale; run alone with `pytest tests/chaos`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if not chaos or len(chaos) == len(items) or "chaos" in (config.option.markexpr or ""):
        return
    # Mixed with the rest of the suite: these would restart services under the other tests.
    config.hook.pytest_deselected(items=chaos)
    items[:] = [item for item in items if not item.get_closest_marker("chaos")]


@pytest.fixture(scope="session")
def scale() -> Scale:
    name = os.environ.get("CHAOS_SCALE", "short")
    if name not in SCALES:
        raise pytest.UsageError(f"CHAOS_SCALE must be one of {', '.join(SCALES)}, not {name!r}")
    return SCALES[name]


@pytest.fixture(scope="session")
async def registered_buyers(stack: Stack, scale: Scale) -> list[Buyer]:
    """The crowd, registered once per session through the API (argon2 makes this the slow part)."""
    return await register_buyers(stack.base_url, scale.buyers, unique("chaos-buyer"), scale.register_concurrency)


@pytest.fixture
async def buyers(stack: Stack, redis: Any, registered_buyers: list[Buyer]) -> list[Buyer]:
    """The crowd, signed in: a buyer whose token a Redis loss took signs in again."""
    async with redis.pipeline(transaction=False) as pipe:
        for buyer in registered_buyers:
            pipe.exists(keys.token(buyer.token))
        present = await pipe.execute()
    lost = [b for b, ok in zip(registered_buyers, present, strict=True) if not ok]
    if lost:
        again = {b.customer_id: b for b in await sign_in_again(stack.base_url, lost)}
        registered_buyers[:] = [again.get(b.customer_id, b) for b in registered_buyers]
    return registered_buyers


@pytest.fixture
async def sale_products(make_product, scale: Scale) -> list[SaleProduct]:
    """Fresh products per scenario: plenty (never sells out), scarce (sells out), limited (max 4 a buyer)."""
    made = []
    for stock, limit in ((1_000_000, None), (scale.scarce_stock, None), (1_000_000, 4)):
        product = await make_product(stock=stock, price_cents=1000 + 100 * len(made), max_per_customer=limit)
        made.append(SaleProduct(int(product["id"]), stock, int(product["priceCents"]), limit))
    return made


def _redis_pid(stack: Stack) -> int | None:
    process = stack.redis_server.process if stack.redis_server is not None else None
    return process.pid if process is not None and process.poll() is None else None


@pytest.fixture(autouse=True)
async def leave_the_stack_usable(stack: Stack, redis: Any) -> AsyncIterator[None]:
    """Whatever a scenario killed, the next one starts with Redis, PostgreSQL, the API server and
    exactly one worker running, and no extra API processes. After a Redis restart the API server
    and the worker are restarted too, so that no connection from before the restart is left in
    their pools (see test_redis_restart: such a connection fails one request)."""
    redis_before = _redis_pid(stack)
    yield
    if stack.redis_server is not None:
        stack.start_redis()
    if stack.postgres is not None:
        stack.start_postgres()
    stack.stop_extra_servers()
    redis_restarted = _redis_pid(stack) != redis_before
    if redis_restarted:
        await redis.connection_pool.disconnect()
        if stack.server is not None and stack.server.poll() is None:
            stack.server.terminate()
            try:
                stack.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_process_tree(stack.server)
    stack.restart_server()
    if redis_restarted or len(stack.workers) != 1 or stack.workers[0].poll() is not None:
        stack.stop_workers()
        stack.start_worker()
