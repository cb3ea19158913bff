"""Enqueue RQ jobs from asyncio code without blocking the event loop.

RQ's `Queue.enqueue_call` is synchronous. Here it runs against a pipeline that is never
executed: RQ builds the job and records its commands (job hash, queue push) exactly as it
would send them, and those commands are replayed on an asyncio pipeline. The job format stays
RQ's own; the request pays one async round trip.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio import Redis
from rq import Queue, Retry

from db.backends import redis_client
from jobs import queues

PERSIST_RETRY = Retry(max=5, interval=[1, 2, 5, 10, 30])


class JobEnqueuer:
    """Enqueues on the queue Redis (QUEUE_REDIS_URL, else the state Redis): RQ cannot run on a
    cluster, and its jobs are only wake-ups, so a small standalone server carries them."""

    def __init__(self, queue_redis_url: str) -> None:
        # Only used to let RQ build jobs; it never talks to Redis after warm().
        self._connection = redis.Redis.from_url(queue_redis_url)
        self._queues = {name: Queue(name, connection=self._connection) for name in queues.ALL}
        self.client: Redis = redis_client(queue_redis_url, max_connections=64)

    def warm(self) -> None:
        """Fetch what RQ caches per queue (the server version) once, at start-up."""
        for queue in self._queues.values():
            queue.get_redis_server_version()

    async def aclose(self) -> None:
        self._connection.close()
        await self.client.aclose()

    def commands(self, queue_name: str, func: str, **options: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        pipe = self._connection.pipeline(transaction=False)
        self._queues[queue_name].enqueue_call(func, pipeline=pipe, **options)
        return [(tuple(args), dict(opts)) for args, opts in pipe.command_stack]

    async def enqueue(self, queue_name: str, func: str, **options: Any) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for args, opts in self.commands(queue_name, func, **options):
                opts.pop("keys", None)
                pipe.execute_command(*args, **opts)
            await pipe.execute()

    async def persist_orders(self, bucket: int) -> None:
        """Wake a drainer of the bucket's to-persist queue."""
        await self.enqueue(
            queues.ORDERS, "jobs.orders.persist_pending_orders", kwargs={"bucket": bucket}, retry=PERSIST_RETRY,
            result_ttl=60, failure_ttl=7 * 86400, timeout=300,
        )

    async def apply_payments(self) -> None:
        await self.enqueue(
            queues.PAYMENTS, "jobs.payments.apply_queued_payments", retry=PERSIST_RETRY, result_ttl=60,
            failure_ttl=7 * 86400, timeout=300,
        )
