"""Takes of one product sent together (db.take_batches), with plain objects in place of Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from db.take_batches import PendingTake, TakeBatches


class Shard:
    """Answers each take with its order id after `delay`, recording the batches it was sent."""

    def __init__(self, delay: float = 0.01, fail: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail  # the index of a batch whose call fails

    async def send(self, pid: int, ttl: int, takes: Sequence[PendingTake]) -> list[Any]:
        self.batches.append([t.order_id for t in takes])
        await asyncio.sleep(self.delay)
        if self.fail == len(self.batches) - 1:
            raise ConnectionError("the shard went away")
        return [t.order_id if t.quantity > 0 else ValueError(t.order_id) for t in takes]


def take(batches: TakeBatches, order_id: str, quantity: int = 1, pid: int = 7) -> Any:
    return batches.take(pid, 60, PendingTake(order_id, quantity, ""))


async def test_a_lone_take_goes_at_once_and_those_arriving_meanwhile_go_together() -> None:
    shard = Shard()
    batches = TakeBatches(shard.send)
    first = asyncio.create_task(take(batches, "a"))
    await asyncio.sleep(0)  # the first call is in flight
    later = [asyncio.create_task(take(batches, f"b{i}")) for i in range(10)]
    assert ["a", *[f"b{i}" for i in range(10)]] == await asyncio.gather(first, *later)
    assert [["a"], [f"b{i}" for i in range(10)]] == shard.batches


async def test_each_take_gets_its_own_answer_and_a_failed_call_fails_only_its_batch() -> None:
    shard = Shard(fail=1)
    batches = TakeBatches(shard.send)
    first = asyncio.create_task(take(batches, "a"))
    await asyncio.sleep(0)
    refused = asyncio.create_task(take(batches, "r", quantity=0))
    lost = asyncio.create_task(take(batches, "l"))
    assert "a" == await first
    with pytest.raises(ConnectionError):
        await lost
    with pytest.raises(ConnectionError):
        await refused
    assert "c" == await take(batches, "c")  # the next call goes through
    assert "x" == await take(batches, "x", pid=8)  # another product has calls of its own


async def test_batches_are_bounded_and_products_do_not_wait_for_each_other() -> None:
    shard = Shard()
    batches = TakeBatches(shard.send, max_batch=4)
    first = asyncio.create_task(take(batches, "a"))
    other = asyncio.create_task(take(batches, "o", pid=8))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(take(batches, f"b{i}")) for i in range(9)]
    await asyncio.gather(first, other, *rest)
    assert [["a"], ["o"], ["b0", "b1", "b2", "b3"], ["b4", "b5", "b6", "b7"], ["b8"]] == shard.batches


async def test_a_request_that_goes_away_does_not_take_its_batch_with_it() -> None:
    shard = Shard(delay=0.05)
    batches = TakeBatches(shard.send)
    first = asyncio.create_task(take(batches, "a"))
    await asyncio.sleep(0)
    leaving = asyncio.create_task(take(batches, "gone"))
    staying = asyncio.create_task(take(batches, "kept"))
    await asyncio.sleep(0.06)  # the second batch is in flight
    leaving.cancel()
    assert ("a", "kept") == (await first, await staying)
    assert [["a"], ["gone", "kept"]] == shard.batches
