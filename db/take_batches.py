"""A hot product's takes sent together: one script call for the concurrent orders of one process.

On a cluster every order for a product runs that product's step (`stock_take`) on the one shard
holding it, and most of a call's cost there is the call (parsing, the script's set-up, the reply),
not the order. So a process keeps at most one take call per product in flight: takes that arrive
meanwhile wait for it and then go together in the next call (up to MAX_BATCH), as a group commit
does. Alone, a take is sent at once and waits for nothing; under load, the batches grow with it.
Each order still gets its own answer; a call that fails fails its batch's orders alike (each
reservation then undoes its own lines as it would have).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Orders per call at most: a call's time on the shard stays a few hundred µs.
MAX_BATCH = 64


@dataclass
class PendingTake:
    order_id: str
    quantity: int
    passes: str  # ',id,id,' of the drops whose pass the order's buyer holds ('' none)
    answer: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


# Sends one batch for (product id, mark TTL) and returns one answer per take, in order: a value,
# or an exception the take raises.
SendBatch = Callable[[int, int, Sequence[PendingTake]], Awaitable[list[Any]]]


class TakeBatches:
    def __init__(self, send: SendBatch, max_batch: int = MAX_BATCH) -> None:
        """`max_batch` 0: no batching at all."""
        self._send = send
        self.max_batch = max_batch
        self._queued: dict[tuple[int, int], list[PendingTake]] = {}
        self._sending: dict[tuple[int, int], asyncio.Task[None]] = {}

    async def take(self, product_id: int, mark_ttl_seconds: int, pending: PendingTake) -> Any:
        if self.max_batch <= 0:
            # No batching (a measurement's baseline): every take its own call, side by side.
            (answer,) = await self._send(product_id, mark_ttl_seconds, [pending])
        else:
            answer = await self._batched(product_id, mark_ttl_seconds, pending)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def _batched(self, product_id: int, mark_ttl_seconds: int, pending: PendingTake) -> Any:
        key = (product_id, mark_ttl_seconds)
        self._queued.setdefault(key, []).append(pending)
        if key not in self._sending:
            # A task of its own: a request that goes away must not take its batch's call with it.
            self._sending[key] = asyncio.create_task(self._drain(key), name=f"rushcart-takes-{product_id}")
        return await asyncio.shield(pending.answer)

    async def _drain(self, key: tuple[int, int]) -> None:
        try:
            while self._queued.get(key):
                queued = self._queued[key]
                batch, self._queued[key] = queued[:self.max_batch], queued[self.max_batch:]
                try:
                    answers: list[Any] = await self._send(key[0], key[1], batch)
                except asyncio.CancelledError:
                    for pending in batch:
                        if not pending.answer.done():
                            pending.answer.set_result(asyncio.CancelledError())
                    raise
                except Exception as exc:  # the call failed: every take of the batch fails with it
                    answers = [exc] * len(batch)
                for pending, answer in zip(batch, answers, strict=True):
                    if not pending.answer.done():
                        pending.answer.set_result(answer)
        finally:
            del self._sending[key]
            if not self._queued.get(key):
                self._queued.pop(key, None)
            else:  # cancelled mid-way (shutdown): those left are told
                for pending in self._queued.pop(key):
                    if not pending.answer.done():
                        pending.answer.set_result(asyncio.CancelledError())
