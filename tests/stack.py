"""A live rushcart for tests: real PostgreSQL, Redis, API server process and RQ worker processes.

With DATABASE_URL / REDIS_URL unset, embedded servers start under .data/test. The test
database is dropped and recreated each run, and Redis starts empty.
"""

from __future__ import annotations

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
from typing import Any

import httpx

from db.migrate import upgrade
from server.embedded import EmbeddedPostgres, EmbeddedRedis

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

    def stop(self) -> None:
        self.stop_workers()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
        if self.redis_server is not None:
            self.redis_server.stop()
        if self.postgres is not None:
            self.postgres.stop()


def start_stack() -> Stack:
    data_dir = Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "test"
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    postgres = redis_server = None
    if not database_url:
        postgres = EmbeddedPostgres(data_dir / "pg", database="rushcart_test")
        database_url = postgres.start()
        postgres.recreate_database()
    if not redis_url:
        shutil.rmtree(data_dir / "redis", ignore_errors=True)
        redis_server = EmbeddedRedis(data_dir / "redis")
        redis_url = redis_server.start()
    else:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    if os.environ.get("DATABASE_URL"):
        _reset_external_database(database_url)
    upgrade(database_url)
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    stack = Stack(database_url, redis_url, env, postgres=postgres, redis_server=redis_server)
    try:
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
