"""A real PgBouncer in transaction pooling mode in front of the test PostgreSQL.

Debian's package (`apt-get install pgbouncer`, as `.ci/run` does) is 1.18: it does not carry
prepared statements between transactions, which is what `DATABASE_POOLER=pgbouncer` is for.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.stack import free_port, wait_until

# Debian installs it in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer", path=SEARCH_PATH)


# pgbouncer refuses to run as root; it switches to this user (the one pgserver runs PostgreSQL as).
RUN_AS_WHEN_ROOT = "pgserver"


@dataclass
class PgBouncer:
    folder: Path
    upstream_url: str  # the PostgreSQL it pools, as DATABASE_URL spells it
    pool_size: int = 8
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """DATABASE_URL for clients of the pooler (same database and user as upstream)."""
        upstream = make_url(self.upstream_url)
        return f"postgresql://{upstream.username}@127.0.0.1:{self.port}/{upstream.database}"

    def _ini(self) -> str:
        upstream = make_url(self.upstream_url)
        host = upstream.query.get("host") or upstream.host or "127.0.0.1"
        port = upstream.port or 5432
        return "\n".join([
            "[databases]",
            f"{upstream.database} = host={host} port={port} dbname={upstream.database} user={upstream.username}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"admin_users = {upstream.username}",
            f"auth_file = {self.folder / 'userlist.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 1000",
            f"logfile = {self.folder / 'pgbouncer.log'}",
            f"pidfile = {self.folder / 'pgbouncer.pid'}",
            "",
        ])

    def start(self) -> str:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        (self.folder / "userlist.txt").write_text(f'"{make_url(self.upstream_url).username}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(self._ini())
        (self.folder / "pgbouncer.pid").unlink(missing_ok=True)
        command = [binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.folder, RUN_AS_WHEN_ROOT)
            for path in self.folder.iterdir():
                shutil.chown(path, RUN_AS_WHEN_ROOT)
            command[1:1] = ["-u", RUN_AS_WHEN_ROOT]
        log = open(self.folder / "stdout.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited; see {self.folder / 'pgbouncer.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=15, message="pgbouncer to listen")
        return self.url

    def show(self, what: str) -> list[dict[str, str]]:
        """Rows of the admin console's SHOW <what> (STATS, POOLS, CLIENTS ...), read with psql: the
        console speaks only the simple query protocol."""
        from pgserver._commands import POSTGRES_BIN_PATH

        out = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", make_url(self.upstream_url).username or "postgres", "-d", "pgbouncer", "--csv",
             "-c", f"SHOW {what}"],
            check=True, capture_output=True, text=True, timeout=15,
        ).stdout
        return list(csv.DictReader(io.StringIO(out)))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
