"""A real streaming replica of the embedded test PostgreSQL, made with pg_basebackup from the same binaries.

The primary needs `wal_level=replica` (PostgreSQL 16's default), WAL senders (`max_wal_senders`,
10 by default) and a `replication` line in pg_hba.conf (pgserver's initdb trusts local ones).
The replica listens on a socket in its own data folder and follows the primary over the
primary's socket (`pg_basebackup -R` writes `primary_conninfo` and `standby.signal`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


@dataclass
class Replica:
    folder: Path
    primary_url: str
    system_user: str | None  # whom pgserver runs PostgreSQL as (root may not)

    @property
    def url(self) -> str:
        primary = make_url(self.primary_url)
        return f"postgresql://{primary.username}:@/{primary.database}?host={self.folder}"

    def create(self) -> str:
        from pgserver._commands import pg_basebackup

        primary = make_url(self.primary_url)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.folder.chmod(0o700)
        if self.system_user is not None:
            shutil.chown(self.folder, self.system_user, self.system_user)
        pg_basebackup(["-R", "-X", "stream", "-c", "fast", "-h", str(primary.query["host"]),
                       "-U", primary.username or "postgres"],
                      pgdata=self.folder, user=self.system_user, timeout=120)
        self.start()
        return self.url

    def start(self) -> None:
        from pgserver._commands import pg_ctl

        # The primary keeps its socket in its data folder, so the backup holds a copy of its lock file.
        for stale in [self.folder / "postmaster.pid", *self.folder.glob(".s.PGSQL.*")]:
            stale.unlink(missing_ok=True)
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.folder}", "-l", str(self.folder / "log"), "start"],
               pgdata=self.folder, user=self.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        from pgserver._commands import pg_ctl

        if (self.folder / "postmaster.pid").exists():
            pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.folder, user=self.system_user, timeout=60)

    async def connect(self) -> Any:
        import asyncpg

        from db.engine import asyncpg_dsn

        return await asyncpg.connect(asyncpg_dsn(self.url))


def replica_of(postgres: Any, folder: Path) -> Replica:
    """A replica of the stack's embedded PostgreSQL (tests.stack.Stack.postgres)."""
    server = postgres.server
    user = server.system_user if os.geteuid() == 0 else None
    return Replica(folder, str(server.get_uri(postgres.database)), user)
