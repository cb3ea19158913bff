"""Find the PostgreSQL and Redis to use: the URLs if set, else the embedded servers.

`rushcart dev` records the embedded servers it runs, and where its API listens, in
`<data dir>/services.json`, so other commands (`serve`, `worker`, `seed`, `user create`, `pay`)
started beside it reuse them (and `pay` calls that API).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from server.embedded import EmbeddedServices
from server.settings import Settings


def _record_path(settings: Settings) -> Path:
    return Path(settings.rushcart_data_dir) / "services.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_services(settings: Settings) -> dict[str, str] | None:
    path = _record_path(settings)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if _alive(int(record.get("pid", 0))) else None


DEFAULT_API_URL = "http://127.0.0.1:8000"


def client_url(host: str, port: int) -> str:
    """The URL a command on this machine uses to reach a server listening on `host`:`port`."""
    # A server listening on every interface is reached on loopback.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def api_url(settings: Settings) -> str:
    """Where commands call the API: PUBLIC_BASE_URL if set, else the running `rushcart dev`'s, else the default."""
    if settings.public_base_url:
        return settings.public_base_url
    running = running_services(settings)
    return str(running.get("api_url") or DEFAULT_API_URL) if running else DEFAULT_API_URL


def record_services(settings: Settings, secret: str, api: str) -> None:
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "pid": os.getpid(),
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "redis_cluster": settings.redis_cluster,
        "queue_redis_url": settings.queue_redis_url,
        "payment_webhook_secret": secret,
        "api_url": api,
    }
    path.write_text(json.dumps(payload))
    path.chmod(0o600)


def forget_services(settings: Settings) -> None:
    with contextlib.suppress(OSError):
        _record_path(settings).unlink()


@contextlib.contextmanager
def services(settings: Settings, *, start: bool, cluster: bool = False) -> Iterator[Settings]:
    """Settings with both URLs filled in; starts (and at exit stops) embedded servers if `start`
    (`cluster`: the state Redis a cluster, EmbeddedServices)."""
    if settings.database_url and settings.redis_url:
        yield settings
        return
    running = running_services(settings)
    if running is not None:
        secret = settings.payment_webhook_secret
        if settings.secret_generated:
            secret = running["payment_webhook_secret"]
        yield replace(
            settings,
            database_url=settings.database_url or running["database_url"],
            redis_url=settings.redis_url or running["redis_url"],
            redis_cluster=settings.redis_cluster if settings.redis_url else bool(running.get("redis_cluster")),
            queue_redis_url=settings.queue_redis_url or str(running.get("queue_redis_url") or ""),
            payment_webhook_secret=secret,
            secret_generated=False,
        )
        return
    if not start:
        raise SystemExit(
            "No DATABASE_URL / REDIS_URL set and no `rushcart dev` running; set the URLs or run `make dev`."
        )
    embedded = EmbeddedServices(Path(settings.rushcart_data_dir), cluster=cluster and not settings.redis_url)
    try:
        database_url, redis_url = embedded.start(settings.database_url, settings.redis_url)
        found = settings.with_urls(database_url, redis_url)
        if embedded.queue_url:
            found = replace(found, redis_cluster=True, queue_redis_url=embedded.queue_url)
        yield found
    finally:
        embedded.stop()
