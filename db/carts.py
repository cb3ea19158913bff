"""Carts: a Redis hash per owner, written behind to PostgreSQL, read back when Redis lost it.

Every change runs one Lua script (db/lua/cart_change.lua) that applies it, bumps the cart's
version and marks the owner dirty. The flush job (jobs/carts.py) writes dirty carts in batches
and clears a mark only if the cart did not change again meanwhile. What can be lost is what
changed since the last flush: at most CART_FLUSH_SECONDS plus one flush's duration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import buckets, keys
from db.backends import Backends
from db.scripts import CartMissing
from db.values import as_text

MAX_LINE_QUANTITY = 100
MAX_LINES = 50


def guest_owner(sid: str) -> str:
    return f"guest:{sid}"


def customer_owner(customer_id: int) -> str:
    return f"customer:{customer_id}"


def customer_id_of(owner: str) -> int | None:
    kind, _, ident = owner.partition(":")
    return int(ident) if kind == "customer" else None


@dataclass(frozen=True)
class CartContents:
    owner: str
    lines: dict[int, int]  # product id -> quantity, in product id order
    updated_at: datetime | None
    version: int = 0

    @classmethod
    def from_hash(cls, owner: str, flat: Sequence[Any]) -> CartContents:
        pairs = dict(zip(flat[::2], flat[1::2], strict=True))
        return cls.from_mapping(owner, pairs)

    @classmethod
    def from_mapping(cls, owner: str, raw: dict[Any, Any]) -> CartContents:
        decoded = {as_text(k): as_text(v) for k, v in raw.items()}
        lines = {int(k): int(v) for k, v in decoded.items() if not k.startswith("_")}
        updated = int(decoded["_u"]) if decoded.get("_u") else 0
        return cls(
            owner=owner,
            lines=dict(sorted(lines.items())),
            updated_at=datetime.fromtimestamp(updated / 1000, UTC) if updated else None,
            version=int(decoded.get("_v", 0)),
        )


@dataclass(frozen=True)
class MergeReport:
    strategy: str
    guest_lines: int = 0
    lines_added: int = 0
    lines_combined: int = 0
    lines_capped: list[int] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class CartTTLs:
    """How long an untouched cart lives, by owner kind."""

    guest_seconds: int
    customer_seconds: int

    def for_owner(self, owner: str) -> int:
        return self.customer_seconds if owner.startswith("customer:") else self.guest_seconds


class CartStore:
    def __init__(self, backends: Backends, ttls: CartTTLs) -> None:
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._sessions = backends.sessions
        self._ttls = ttls

    def ttl_for(self, owner: str) -> int:
        return self._ttls.for_owner(owner)

    async def get(self, owner: str) -> CartContents:
        raw = await self._redis.hgetall(keys.cart(owner))
        if not raw:
            await self.restore(owner)
            raw = await self._redis.hgetall(keys.cart(owner))
        return CartContents.from_mapping(owner, raw)

    async def restore(self, owner: str) -> None:
        """Load the cart's last flushed copy from PostgreSQL into Redis (an empty cart if none)."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    text("SELECT lines, updated_at FROM carts WHERE owner = :owner AND expires_at > now()"),
                    {"owner": owner},
                )
            ).one_or_none()
        lines = {} if row is None else {int(pid): int(qty) for pid, qty in row.lines.items()}
        updated_ms = _now_ms() if row is None else int(row.updated_at.timestamp() * 1000)
        await self._scripts.cart_restore(owner, lines, updated_ms=updated_ms, ttl_seconds=self.ttl_for(owner))

    async def change(self, owner: str, op: str, product_id: int = 0, quantity: int = 0) -> CartContents:
        for _ in range(3):
            try:
                flat = await self._scripts.cart_change(
                    owner, op, product_id, quantity, now_ms=_now_ms(), ttl_seconds=self.ttl_for(owner),
                    max_units=MAX_LINE_QUANTITY, max_lines=MAX_LINES,
                )
            except CartMissing:
                await self.restore(owner)
                continue
            return CartContents.from_hash(owner, flat)
        raise RuntimeError("cart vanished from Redis while being restored")

    async def merge(self, guest: str, customer: str, strategy: str) -> MergeReport:
        for _ in range(3):
            try:
                counts = await self._scripts.cart_merge(
                    guest, customer, strategy, now_ms=_now_ms(), guest_ttl_seconds=self.ttl_for(guest),
                    customer_ttl_seconds=self.ttl_for(customer), max_units=MAX_LINE_QUANTITY, max_lines=MAX_LINES,
                )
            except CartMissing:
                await self.restore(guest)
                await self.restore(customer)
                continue
            # The guest row goes now rather than at the next flush, so nothing can restore it.
            async with self._sessions() as session, session.begin():
                await session.execute(text("DELETE FROM carts WHERE owner = :owner"), {"owner": guest})
            return MergeReport(strategy, counts.guest_lines, counts.lines_added, counts.lines_combined,
                               counts.lines_capped)
        raise RuntimeError("carts vanished from Redis while being merged")


async def flush_dirty(backends: Backends, ttls: CartTTLs, batch_size: int = 1000) -> int:
    """Write every dirty cart to PostgreSQL, bucket by bucket: one upsert and one delete statement
    per batch, every batch one bucket's. Returns the number of carts written or deleted."""
    written = 0
    for bucket in range(buckets.count()):
        written += await _flush_bucket(backends, ttls, keys.carts_dirty(bucket), batch_size)
    return written


async def _flush_bucket(backends: Backends, ttls: CartTTLs, dirty: str, batch_size: int) -> int:
    redis, sessions = backends.redis, backends.sessions
    written = 0
    while True:
        owners = [as_text(o) for o in await redis.zrange(dirty, 0, batch_size - 1)]
        if not owners:
            return written
        async with redis.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.hgetall(keys.cart(owner))
            hashes = await pipe.execute()
        upserts: list[dict[str, Any]] = []
        deletes: list[str] = []
        versions: dict[str, int] = {}
        for owner, raw in zip(owners, hashes, strict=True):
            if not raw:
                continue  # expired or lost in Redis: nothing newer than PostgreSQL to write
            cart = CartContents.from_mapping(owner, raw)
            versions[owner] = cart.version
            if not cart.lines:
                deletes.append(owner)
                continue
            ttl = ttls.for_owner(owner)
            updated = cart.updated_at or datetime.now(UTC)
            upserts.append(
                {
                    "owner": owner,
                    "customer_id": customer_id_of(owner),
                    "lines": {str(k): v for k, v in cart.lines.items()},
                    "updated_at": updated,
                    "expires_at": updated + timedelta(seconds=ttl),
                }
            )
        async with sessions() as session, session.begin():
            if upserts:
                await session.execute(
                    text(
                        "INSERT INTO carts (owner, customer_id, lines, updated_at, expires_at) "
                        "SELECT owner, customer_id, lines, updated_at, expires_at FROM jsonb_to_recordset("
                        "CAST(:rows AS jsonb)) AS r(owner text, customer_id bigint, lines jsonb, "
                        "updated_at timestamptz, expires_at timestamptz) "
                        "ON CONFLICT (owner) DO UPDATE SET lines = EXCLUDED.lines, "
                        "updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at "
                        "WHERE carts.updated_at <= EXCLUDED.updated_at"
                    ),
                    {"rows": json.dumps(upserts, default=_iso)},
                )
            if deletes:
                await session.execute(text("DELETE FROM carts WHERE owner = ANY(:owners)"), {"owners": deletes})
        await backends.scripts.cart_flushed([(owner, versions.get(owner, -1)) for owner in owners])
        written += len(upserts) + len(deletes)
        if len(owners) < batch_size:
            return written


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


async def purge_expired(sessions: async_sessionmaker[AsyncSession], batch: int = 5000) -> int:
    """Delete carts idle past their TTL from PostgreSQL (Redis forgets them by itself)."""
    total = 0
    while True:
        async with sessions() as session, session.begin():
            result = await session.execute(
                text(
                    "DELETE FROM carts WHERE owner IN (SELECT owner FROM carts WHERE expires_at <= now() "
                    "LIMIT :batch)"
                ),
                {"batch": batch},
            )
        count = result.rowcount or 0  # type: ignore[attr-defined]
        total += count
        if count < batch:
            return total
