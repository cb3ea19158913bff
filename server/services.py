"""Find the PostgreSQL and Redis to use: the URLs if set, else the embedded servers.

`rushcart dev` records the embedded servers it runs in `<data dir>/services.json`, so other
commands (`serve`, `worker`, `seed`, `user create`, `pay`) started beside it reuse them.
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


def record_services(settings: Settings, secret: str) -> None:
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "pid": os.getpid(),
        "database_url": settings.database_url,
        "redis_url": settings.redis_url,
        "payment_webhook_secret": secret,
        "public_base_url": settings.public_base_url,
    }
    path.write_text(json.dumps(payload))
    path.chmod(0o600)


def forget_services(settings: Settings) -> None:
    with contextlib.suppress(OSError):
        _record_path(settings).unlink()


@contextlib.contextmanager
def services(settings: Settings, *, start: bool) -> Iterator[Settings]:
    """Settings with both URLs filled in; starts (and at exit stops) embedded servers if `start`."""
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
            payment_webhook_secret=secret,
            secret_generated=False,
        )
        return
    if not start:
        raise SystemExit(
            "No DATABASE_URL / REDIS_URL set and no `rushcart dev` running; set the URLs or run `make dev`."
        )
    embedded = EmbeddedServices(Path(settings.rushcart_data_dir))
    try:
        database_url, redis_url = embedded.start(settings.database_url, settings.redis_url)
        yield settings.with_urls(database_url, redis_url)
    finally:
        embedded.stop()
