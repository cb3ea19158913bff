"""The benchmark's own stack: embedded PostgreSQL and Redis, API servers, RQ workers.

Everything lives under one data folder (default .data/bench) so it never meets the servers of
`make dev` or the test suite. The database is recreated and Redis starts empty on every run.
Every process started here is stopped by `stop()`, which the orchestrator calls from `finally`.
"""

from __future__ import annotations

import contextlib
import json
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
from typing import IO

import httpx
import redis

from db.migrate import upgrade
from server.embedded import EmbeddedCluster, EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "rushcart_bench"

# The servers each variant is served by; all of them answer GET /readyz.
SERVER_COMMANDS: dict[str, list[str]] = {
    "rushcart": ["-m", "server", "serve", "--log-level", "warning"],
    "ceiling": ["-m", "uvicorn", "bench.ceiling_app:create_app", "--factory", "--log-level", "warning",
                "--no-access-log"],
    "baseline": ["-m", "uvicorn", "bench.baseline_app:create_app", "--factory", "--log-level", "warning",
                 "--no-access-log"],
}


class StackError(Exception):
    """A process did not start or did not become ready; the message names its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _forget_dead_pg_handles(pgdata: Path) -> None:
    """pgserver stops PostgreSQL when its last handle closes, counting handles by pid in
    .handle_pids.json; a pid left there by a killed run would keep our server running forever."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    handles.write_text(json.dumps([pid for pid in pids if Path(f"/proc/{pid}").exists()]))


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime, the 14th and 15th fields of stat(5); fields[0] here is the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0


@dataclass
class BenchStack:
    data_dir: Path
    postgres: EmbeddedPostgres | None = None
    redis_server: EmbeddedRedis | None = None
    database_url: str = ""
    redis_url: str = ""
    # --cluster: the state on a 3-primary + 3-replica cluster, RQ's queues on `redis_server`.
    cluster: EmbeddedCluster | None = None
    queue_url: str = ""
    wait_replicas: int = 0
    children: list[Child] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # valkey-server opens its log relative to its --dir: a relative folder would not be found.
        self.data_dir = self.data_dir.resolve()

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RUSHCART_ENV": "test",
            "RUSHCART_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "PAYMENT_WEBHOOK_SECRET": "whsec_bench_" + "0" * 32,
            # Nothing may expire mid-run: expiry would hand units back and blur the stock check.
            "ORDER_PAYMENT_TTL_SECONDS": "86400",
            # The drop part's thousands of shoppers all come from this machine's one address.
            "SESSION_STARTS_PER_MINUTE": "10000000",
            "DROP_JOINS_PER_MINUTE": "10000000",
            **({"REDIS_CLUSTER": "true", "QUEUE_REDIS_URL": self.queue_url,
                "REDIS_WAIT_REPLICAS": str(self.wait_replicas)} if self.cluster else {}),
        }

    def start_storage(self, appendfsync: str = "always", *, cluster: bool = False, wait_replicas: int = 0) -> None:
        """Fresh database, empty Redis (AOF fsync policy `appendfsync`), migrations applied. `cluster`:
        the state on an empty 3-primary + 3-replica cluster, that Redis keeping RQ's queues."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._reap_stale_children()
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_pg_handles(self.data_dir / "pg")
        self.postgres = EmbeddedPostgres(self.data_dir / "pg", database=DATABASE)
        self.database_url = self.postgres.start()
        self.postgres.recreate_database()
        redis_dir = self.data_dir / "redis"
        self.redis_server = EmbeddedRedis(redis_dir)
        if redis_dir.exists():
            # Keep only the pidfile, by which EmbeddedRedis stops a server a killed run left behind.
            for path in redis_dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != self.redis_server.pidfile.name:
                    path.unlink()
        self.redis_url = self.redis_server.start(appendfsync)
        if cluster:
            shutil.rmtree(self.data_dir / "redis-cluster", ignore_errors=True)
            self.cluster = EmbeddedCluster(self.data_dir / "redis-cluster")
            self.queue_url, self.wait_replicas = self.redis_url, wait_replicas
            self.redis_url = self.cluster.start(appendfsync)
        upgrade(self.database_url)

    def shard_costs(self) -> dict[int, tuple[float, float]]:
        """Per state primary (by port): seconds spent so far in script calls (INFO commandstats'
        EVALSHA, which includes the commands a script runs: they are also counted on their own, so
        a sum over every command would count them twice) and the process' CPU seconds."""
        servers = self.cluster.nodes[:self.cluster.primaries] if self.cluster else [self.redis_server]
        costs = {}
        for server in servers:
            if server is None or server.process is None:
                continue
            client = redis.Redis(port=server.port)
            try:
                stats = client.info("commandstats")
            finally:
                client.close()
            scripts = sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
            costs[server.port] = (scripts / 1e6, process_cpu(server.process.pid))
        return costs

    @property
    def _children_file(self) -> Path:
        return self.data_dir / "children.json"

    def _remember_children(self) -> None:
        record = [{"pid": c.process.pid, "cmdline": c.process.args} for c in self.children]
        self._children_file.write_text(json.dumps(record))

    def _reap_stale_children(self) -> None:
        """Stop the processes of an earlier run that was killed before it could (SIGKILL, OOM).

        Only a pid whose command line is still the one recorded, started with this data folder
        in its environment, is ours to stop: `python -m server worker` alone is not unique."""
        try:
            record = json.loads(self._children_file.read_text())
        except (OSError, ValueError):
            return
        marker = f"RUSHCART_DATA_DIR={self.data_dir}".encode()
        for entry in record:
            proc = Path(f"/proc/{entry['pid']}")
            try:
                cmdline = [part.decode() for part in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline == entry["cmdline"] and marker in environ:
                # Its whole process group: an RQ worker forks its scheduler into it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(entry["pid"], signal.SIGKILL)
        self._children_file.unlink(missing_ok=True)

    def _spawn(self, name: str, args: list[str], port: int = 0) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # closed in stop(), after the child is gone
        self._logs.append(log)
        # A session of its own: Ctrl-C reaches only the orchestrator, which stops children in order.
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        child = Child(name, process, log_path, port)
        self.children.append(child)
        self._remember_children()
        return child

    def cpu_seconds(self, kind: str) -> float:
        """CPU used so far by our children named `kind-N` (a variant's servers, "worker"), or by
        "redis": read from /proc, so a busy machine's other load does not blur it."""
        if kind == "redis":
            # The state's servers: the cluster's nodes (replicas too: they apply every write), else the one.
            servers = self.cluster.nodes if self.cluster else [self.redis_server] if self.redis_server else []
            pids = [s.process.pid for s in servers if s.process is not None]
        else:
            pids = [c.process.pid for c in self.children if c.name.rsplit("-", 1)[0] == kind]
        return sum(process_cpu(pid) for pid in pids)

    def run_cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise StackError(f"`rushcart {' '.join(args[:2])}` failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start_servers(self, variants: list[str], count: int) -> dict[str, list[int]]:
        """`count` separate server processes per variant, each on its own port (the load generator
        spreads its connections over them, evenly, which one port shared by forked workers does not)."""
        started: dict[str, list[Child]] = {}
        for variant in variants:
            for i in range(count):
                port = free_port()
                child = self._spawn(f"{variant}-{i}", [*SERVER_COMMANDS[variant], "--port", str(port)], port)
                started.setdefault(variant, []).append(child)
        for children in started.values():
            for child in children:
                self._wait_ready(child)
        return {variant: [child.port for child in children] for variant, children in started.items()}

    def start_server(self, name: str, variant: str = "rushcart") -> Child:
        """One more server process named `name` (of the form `kind-N`), ready; stop it with stop_child."""
        port = free_port()
        child = self._spawn(name, [*SERVER_COMMANDS[variant], "--port", str(port)], port)
        self._wait_ready(child)
        return child

    def stop_child(self, child: Child) -> None:
        """Stop one child as stop_children stops all of them."""
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        self.children.remove(child)
        self._remember_children()

    def _wait_ready(self, child: Child, timeout: float = 60) -> None:
        url = f"http://127.0.0.1:{child.port}/readyz"

        def ready() -> bool:
            if child.process.poll() is not None:
                raise StackError(f"{child.name} exited with {child.process.returncode}; see {child.log}")
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, f"{child.name} to answer {url}")

    def start_workers(self, count: int) -> None:
        from rq import Worker

        workers = [self._spawn(f"worker-{i}", ["-m", "server", "worker"]) for i in range(count)]
        client = redis.Redis.from_url(self.queue_url or self.redis_url)

        def registered() -> bool:
            for worker in workers:
                if worker.process.poll() is not None:
                    raise StackError(f"{worker.name} exited with {worker.process.returncode}; see {worker.log}")
            return len(Worker.all(connection=client)) >= count

        try:
            wait_until(registered, 60, f"{count} RQ workers to register")
        finally:
            client.close()

    def stop_children(self) -> None:
        """SIGTERM to all (RQ finishes its job, uvicorn its requests), then SIGKILL what lingers."""
        for child in self.children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            # Whatever it forked and left behind (an RQ scheduler) is in its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
        self.children.clear()
        self._children_file.unlink(missing_ok=True)

    def stop(self) -> None:
        self.stop_children()
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        for log in self._logs:
            log.close()
        self._logs.clear()
