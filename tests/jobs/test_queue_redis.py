"""QUEUE_REDIS_URL: RQ's jobs on a Redis of their own, the work items they wake up for in the state Redis.

RQ does not run on a Redis Cluster, so a clustered deployment keeps its queues on a small
standalone server. Here a second embedded server plays that part for an API process and a worker.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis

from db import buckets, keys
from server.embedded import EmbeddedRedis
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import place
from tests.stack import ROOT, Stack


@pytest.fixture
def queue_redis(stack: Stack) -> Iterator[str]:
    folder = ROOT / ".data" / "test" / "queue-redis"
    shutil.rmtree(folder, ignore_errors=True)
    server = EmbeddedRedis(folder)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


async def test_orders_are_persisted_through_a_separate_queue_redis(
    stack: Stack, api: Api, make_product, queue_redis: str, wait_persisted
) -> None:
    """With QUEUE_REDIS_URL set, placeOrder's job goes to that Redis and its worker persists the order."""
    product = await make_product(stock=5)
    stack.stop_workers()  # only the worker on the queue Redis may persist
    server = stack.start_extra_server("server-queue-redis", QUEUE_REDIS_URL=queue_redis)
    try:
        worker = stack.start_worker(QUEUE_REDIS_URL=queue_redis, PERSIST_SWEEP_SECONDS="3600")
        buyer = await api.as_().register(f"{unique('queued')}@example.com")
        via_extra = Api(server.graphql_url, token=buyer.token)
        state = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        # An earlier test's flag would make this order enqueue nothing.
        state.delete(*[keys.persist_pending(b) for b in range(buckets.count())])
        order = await place(via_extra, (product, 1))
        await wait_persisted([order["order"]["id"]])
        queues = redis.Redis.from_url(queue_redis, decode_responses=True)
        assert 1 == queues.scard("rq:workers")
        assert [] != [k for k in queues.scan_iter("rq:job:*")]
        worker.terminate()
        worker.wait(timeout=15)
    finally:
        stack.stop_workers()
        server.process.terminate()
        server.process.wait(timeout=15)
        stack.extra_servers.remove(server)
        stack.start_worker()
