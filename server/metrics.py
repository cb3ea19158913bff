"""`GET /metrics` in Prometheus' text format, correct across several server processes.

With PROMETHEUS_MULTIPROC_DIR set (`rushcart serve` sets it to a folder of its own when
unset), every process writes its samples there and any process can answer for all of them.
Gauges that describe shared state (queue depth, persistence lag) are read from Redis when
scraped, so they are the same whichever process answers. Buy attempts are counted where they
happen, in the resolvers (resolvers.buy_metrics); this module only registers them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.cluster import RedisCluster
from starlette.requests import Request
from starlette.responses import Response

from db import keys
from jobs import queues
from resolvers.buy_metrics import ORDERS, RESERVATION_SECONDS

WEBHOOKS = Counter("rushcart_webhook_events_total", "Payment webhook answers by outcome", ["outcome"])
SUBSCRIPTIONS = Gauge("rushcart_active_subscriptions", "Open GraphQL subscriptions", multiprocess_mode="livesum")


class QueueCollector(Collector):
    """Backlog figures read from Redis at scrape time."""

    def __init__(self, state: redis.Redis | RedisCluster, queue: redis.Redis) -> None:
        self._redis = state
        self._queue = queue

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registering must not read Redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("rushcart_queue_depth", "Jobs waiting per RQ queue", labels=["queue"])
        jobs = self._queue.pipeline(transaction=False)
        for name in queues.ALL:
            jobs.llen(f"rq:queue:{name}")
        lengths = jobs.execute()
        pipe = self._redis.pipeline(transaction=False)
        for queue, _ in keys.all_orders_to_persist():
            pipe.zcard(queue)
            pipe.zrange(queue, 0, 0, withscores=True)
        replies = pipe.execute()
        waiting = sum(replies[0::2])
        oldest = min((first[0] for first in replies[1::2] if first), key=lambda pair: pair[1], default=None)
        for name, length in zip(queues.ALL, lengths, strict=True):
            depth.add_metric([name], length)
        yield depth
        yield GaugeMetricFamily("rushcart_orders_awaiting_persistence", "Accepted orders not yet in PostgreSQL",
                                value=waiting)
        lag = time.time() - oldest[1] / 1000 if oldest else 0.0
        yield GaugeMetricFamily("rushcart_persistence_lag_seconds", "Age of the oldest order not yet persisted",
                                value=max(0.0, lag))


def registry_for(redis_url: str, queue_redis_url: str, *, cluster: bool = False) -> CollectorRegistry:
    """All processes' samples (multiprocess mode) or this process's, plus the Redis backlog."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for metric in (ORDERS, RESERVATION_SECONDS, WEBHOOKS, SUBSCRIPTIONS):
            registry.register(metric)
    state = (RedisCluster.from_url(redis_url, socket_timeout=2) if cluster
             else redis.Redis.from_url(redis_url, socket_timeout=2))
    registry.register(QueueCollector(state, redis.Redis.from_url(queue_redis_url, socket_timeout=2)))
    return registry


async def publish_subscriber_count(hub: Any, every: float = 5.0) -> None:
    """Keep this process's share of the subscriptions gauge current (summed across processes)."""
    while True:
        SUBSCRIPTIONS.set(hub.subscriber_count)
        await asyncio.sleep(every)


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
