"""A live rushcart for tests: real PostgreSQL, Redis, API server process and RQ worker processes.

With DATABASE_URL / REDIS_URL unset, embedded servers start under .data/test; with
RUSHCART_TEST_CLUSTER set too, the state Redis is a 3-primary + 3-replica Valkey Cluster and RQ's
queues get a standalone server (REDIS_CLUSTER=true, QUEUE_REDIS_URL). The test
database is dropped and recreated each run, and Redis starts empty. With
RUSHCART_TEST_POOLER=pgbouncer the API servers and workers reach PostgreSQL through a real
PgBouncer in transaction pooling mode (tests/pgbouncer.py); the tests' own connections do not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from db.migrate import upgrade
from server.embedded import EmbeddedCluster, EmbeddedPostgres, EmbeddedRedis

if TYPE_CHECKING:
    from tests.pgbouncer import PgBouncer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(os.environ.get("RUSHCART_TEST_OUTPUT") or ROOT / "tests" / "output")

# Short periods so periodic work is observable within a test's deadline.
TEST_ENV = {
    "RUSHCART_ENV": "test",
    "PAYMENT_WEBHOOK_SECRET": "whsec_test_" + "0" * 32,
    "EXPIRY_SWEEP_SECONDS": "1",
    "PERSIST_SWEEP_SECONDS": "1",
    "CART_FLUSH_SECONDS": "1",
    "PRODUCT_CACHE_TTL_SECONDS": "60",
    # Tests speak for many shoppers from one address: they say which with X-Forwarded-For, and the
    # budgets per address are tested on a server of their own (tests/resolvers/test_rate_limits.py).
    "TRUSTED_PROXIES": "127.0.0.1",
    "LOGIN_ATTEMPTS_PER_CLIENT": "100000",
    "LOGIN_ATTEMPTS_PER_ACCOUNT": "100000",
    "SESSION_STARTS_PER_MINUTE": "100000",
    "DROP_JOINS_PER_MINUTE": "100000",
}


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    database_url: str
    redis_url: str
    env: dict[str, str]
    port: int = 0
    postgres: EmbeddedPostgres | None = None
    redis_server: EmbeddedRedis | None = None
    server: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_servers: list[ApiProcess] = field(default_factory=list)
    pgbouncer: PgBouncer | None = None
    # RUSHCART_TEST_CLUSTER: the state on a cluster, RQ's queues on a server of their own.
    cluster: EmbeddedCluster | None = None
    queue_server: EmbeddedRedis | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    def _spawn(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        log = open(OUTPUT / f"{name}.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "server", *args],
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def start_server(self) -> None:
        self.port = self.port or free_port()
        self.server = self._spawn("server", "serve", "--port", str(self.port), "--log-level", "warning")

        def ready() -> bool:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"API server exited; see {OUTPUT / 'server.log'}")
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, message="the API server to be ready")

    def start_worker(self, **extra_env: str) -> subprocess.Popen[bytes]:
        worker = self._spawn(f"worker-{len(self.workers)}", "worker", extra_env=extra_env)
        self.workers.append(worker)
        return worker

    def stop_workers(self, kill: bool = False) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers.clear()

    # Failure injection (tests/chaos). Each leaves the Stack's own records (workers, servers)
    # describing what is running afterwards.

    def start_extra_server(self, name: str | None = None, **extra_env: str) -> ApiProcess:
        """Another API server process on a port of its own, against the same PostgreSQL and Redis."""
        port = free_port()
        name = name or f"server-extra-{len(self.extra_servers)}"
        process = self._spawn(name, "serve", "--port", str(port), "--log-level", "warning", extra_env=extra_env)
        extra = ApiProcess(name, process, port)
        self.extra_servers.append(extra)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"API server {name} exited; see {OUTPUT / (name + '.log')}")
            try:
                return httpx.get(f"{extra.base_url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, message=f"API server {name} to be ready")
        return extra

    def stop_extra_servers(self) -> None:
        for extra in self.extra_servers:
            if extra.process.poll() is None:
                extra.process.terminate()
        for extra in self.extra_servers:
            try:
                extra.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_process_tree(extra.process)
        self.extra_servers.clear()

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """kill -9 of a worker, as a crash would; the RQ scheduler it forked goes with it."""
        kill_process_tree(worker)
        if worker in self.workers:
            self.workers.remove(worker)

    def restart_server(self) -> None:
        """Start the main API server again on its port if it is not running."""
        if self.server is not None and self.server.poll() is None:
            return
        self.start_server()

    def kill_redis(self) -> None:
        """SIGKILL of the embedded Redis: only what it already wrote to its AOF survives."""
        assert self.redis_server is not None, "Redis is not embedded (REDIS_URL is set)"
        self.redis_server.kill()
        # The process is gone; a stale pid file would make the next start signal whoever has its pid now.
        self.redis_server.pidfile.unlink(missing_ok=True)

    def start_redis(self, appendfsync: str = "always") -> None:
        """Start the embedded Redis again on the same port; it loads its AOF before answering PING."""
        assert self.redis_server is not None, "Redis is not embedded (REDIS_URL is set)"
        if self.redis_server.process is not None and self.redis_server.process.poll() is None:
            return
        self.redis_server.start(appendfsync=appendfsync)

    def stop_postgres(self, mode: str = "immediate") -> None:
        """Stop the embedded PostgreSQL in place (pg_ctl stop -m MODE); `immediate` is a crash:
        no checkpoint, every connection cut, recovery from WAL at the next start."""
        from pgserver._commands import pg_ctl

        assert self.postgres is not None and self.postgres.server is not None, "PostgreSQL is not embedded"
        server = self.postgres.server
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)

    def start_postgres(self) -> None:
        """Start the embedded PostgreSQL stopped by stop_postgres, with pgserver's options: the
        same data folder and socket directory, so DATABASE_URL stays valid."""
        from pgserver._commands import pg_ctl
        from pgserver.utils import PostmasterInfo

        assert self.postgres is not None and self.postgres.server is not None, "PostgreSQL is not embedded"
        server = self.postgres.server

        def running() -> Any:
            # postmaster.pid exists from start until a clean or immediate stop has finished.
            fresh = PostmasterInfo.read_from_pgdata(server.pgdata)
            return fresh if fresh is not None and fresh.is_running() and fresh.status == "ready" else None

        if running():
            return
        socket_dir = server.get_postmaster_info().socket_dir
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.log), "start"],
               pgdata=server.pgdata, user=server.system_user, timeout=60)
        # pgserver stops the server at exit through the postmaster it knows about: the new one.
        server._postmaster_info = wait_until(running, timeout=30, message="PostgreSQL to be ready")

    def stop(self) -> None:
        self.stop_extra_servers()
        self.stop_workers()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
        if self.pgbouncer is not None:
            self.pgbouncer.stop()
        for server in (self.redis_server, self.queue_server, self.cluster):
            if server is not None:
                server.stop()
        if self.postgres is not None:
            self.postgres.stop()


@dataclass
class ApiProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"


def kill_process_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process, then whatever it had forked (an RQ worker forks its scheduler)."""
    import psutil

    children = []
    if process.poll() is None:  # once reaped, its pid may belong to someone else
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(process.pid).children(recursive=True)
        process.kill()
    process.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)


def start_stack() -> Stack:
    data_dir = Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "test"
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    postgres = redis_server = None
    if not database_url:
        postgres = EmbeddedPostgres(data_dir / "pg", database="rushcart_test")
        database_url = postgres.start()
        postgres.recreate_database()
    cluster = queue_server = None
    cluster_env: dict[str, str] = {}
    if os.environ.get("RUSHCART_TEST_CLUSTER") and not redis_url:
        # A 3-primary + 3-replica cluster for the state, a standalone server for RQ's queues.
        shutil.rmtree(data_dir / "redis-cluster", ignore_errors=True)
        shutil.rmtree(data_dir / "queue-redis", ignore_errors=True)
        cluster = EmbeddedCluster(data_dir / "redis-cluster")
        redis_url = cluster.start()
        queue_server = EmbeddedRedis(data_dir / "queue-redis")
        cluster_env = {"REDIS_CLUSTER": "true", "QUEUE_REDIS_URL": queue_server.start()}
    elif not redis_url:
        shutil.rmtree(data_dir / "redis", ignore_errors=True)
        redis_server = EmbeddedRedis(data_dir / "redis")
        redis_url = redis_server.start()
    else:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    if os.environ.get("DATABASE_URL"):
        _reset_external_database(database_url)
    upgrade(database_url)
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url, **cluster_env}
    stack = Stack(database_url, redis_url, env, postgres=postgres, redis_server=redis_server, cluster=cluster,
                  queue_server=queue_server)
    try:
        if os.environ.get("RUSHCART_TEST_POOLER") == "pgbouncer":
            from tests.pgbouncer import PgBouncer

            stack.pgbouncer = PgBouncer(data_dir / "pgbouncer", database_url)
            env.update(DATABASE_URL=stack.pgbouncer.start(), DATABASE_POOLER="pgbouncer")
        stack.start_server()
        stack.start_worker()
    except BaseException:
        stack.stop()
        raise
    return stack


def _reset_external_database(database_url: str) -> None:
    """Drop every rushcart table of a server given by URL, so each run starts from migrations."""
    import asyncio

    import asyncpg

    from db.engine import asyncpg_dsn

    async def reset() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(reset())


async def eventually(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
                     message: str = "condition") -> Any:
    """Await predicate() (a coroutine function) until its result is truthy, or fail at the deadline."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)
