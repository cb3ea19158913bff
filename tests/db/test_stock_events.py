"""Stock events coalesced at the source: a hot product publishes a few figures, never a stale last one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from db import keys
from db.stock import reconcile
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import available, place
from tests.stack import eventually


@asynccontextmanager
async def figures(redis: Any, product_id: int | str) -> AsyncIterator[list[int]]:
    """The figures published on the product's sharded channel while the block runs, as they arrive."""
    seen: list[int] = []
    pubsub = redis.pubsub()
    await pubsub.ssubscribe(keys.stock_channel(product_id))

    async def read() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "smessage":
                seen.append(int(json.loads(message["data"])["available"]))

    reader = asyncio.create_task(read())
    try:
        yield seen
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await pubsub.aclose()


async def arrives(seen: list[int], figure: int, timeout: float = 10) -> None:
    async def last_is() -> bool:
        return bool(seen) and seen[-1] == figure

    await eventually(last_is, timeout=timeout, interval=0.01, message=f"the figure {figure} to be published")


async def test_a_burst_publishes_a_few_figures_and_ends_on_the_counter(api: Api, make_product, redis) -> None:
    """Sixty orders at once on one product publish far fewer than sixty figures, the last one the counter."""
    product = await make_product(stock=200)
    buyers = await asyncio.gather(*[api.register(f"{unique('hot')}@example.com") for _ in range(6)])
    async with figures(redis, product["id"]) as seen:
        await asyncio.gather(*[place(buyers[i % 6], (product, 1)) for i in range(60)])
        assert 140 == await available(api, product)
        await arrives(seen, 140)
    assert len(seen) < 30
    assert seen == sorted(seen, reverse=True)


async def test_an_owed_figure_goes_out_without_a_later_change(state, make_product, redis) -> None:
    """A change inside the window is owed, and the process that made it publishes it once the window ends."""
    product = await make_product(stock=10)
    pid = int(product["id"])
    await state.stock.rebuild([pid])
    now_s, now_us = await redis.time()
    # As if a figure had just gone out: the next change falls inside the window.
    await redis.set(keys.stock_published(pid), str(now_s * 1000 + now_us // 1000), ex=60)
    async with figures(redis, pid) as seen:
        assert 13 == await state.backends.scripts.stock_adjust(pid, 3, None)
        assert (await redis.get(keys.stock_published(pid))).endswith("+")
        await arrives(seen, 13)
    assert [13] == seen
    assert not (await redis.get(keys.stock_published(pid))).endswith("+")


async def test_a_figure_owed_by_a_dead_process_goes_out_with_the_reconciler(state, make_product, redis) -> None:
    """A figure still owed long after its window (its process died before flushing) is published by the reconciler."""
    product = await make_product(stock=8)
    pid = int(product["id"])
    await state.stock.rebuild([pid])
    await redis.set(keys.stock_published(pid), "1000+", ex=60)
    async with figures(redis, pid) as seen:
        await reconcile(state.backends)
        await arrives(seen, 8)
    assert "+" not in await redis.get(keys.stock_published(pid))
