"""Cart write-behind and purge of idle carts."""

from __future__ import annotations

from db import carts
from jobs import runtime


def flush_carts() -> int:
    """Write dirty carts to PostgreSQL in batches; returns how many were written or deleted."""

    async def body(rt: runtime.Runtime) -> int:
        return await carts.flush_dirty(rt.backends, rt.config.cart_ttls)

    return runtime.run(body)


def purge_expired_carts() -> int:
    """Delete carts idle past their TTL from PostgreSQL."""

    async def body(rt: runtime.Runtime) -> int:
        return await carts.purge_expired(rt.backends.sessions)

    return runtime.run(body)
