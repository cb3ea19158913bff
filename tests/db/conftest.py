"""A real 3-primary + 3-replica Valkey Cluster of the embedded binary, shared by the cluster tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from server.embedded import EmbeddedCluster
from tests.stack import ROOT


@pytest.fixture(scope="session")
def cluster() -> Iterator[EmbeddedCluster]:
    folder = ROOT / ".data" / "test" / "cluster"
    shutil.rmtree(folder, ignore_errors=True)
    running = EmbeddedCluster(folder)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(cluster: EmbeddedCluster) -> AsyncIterator[RedisCluster]:
    connection = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    await connection.initialize()  # learns the slots, so keys can be mapped to nodes before a command
    try:
        yield connection
    finally:
        await connection.aclose()
