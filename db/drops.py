"""Drops: products sold through a waiting room, kept in PostgreSQL (the line is db.drop_line).

What must hold:
- A product is in at most one drop that has not ended (a partial unique index, migration 0004).
- While a drop is live, its products' sale facts in Redis (`pinfo:{pid}` field `drop`) name it, so
  the reservation script asks for a pass. Creating a drop writes the field while the products'
  stock rows are locked, before the commit: a stock rebuild (which reads the drop under a share
  lock on the same rows) can then never write an older answer over it, and no order slips in
  between the commit and the write. A failed commit leaves a name that points at no live drop;
  the buying path clears such a name when it meets it (db.orders). Ending a drop clears the field
  after the commit: until then its products still ask for a pass, never the other way round.
- A product outside every drop has no `drop` field at all, or '': buying it costs nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db import keys
from db.backends import Backends
from db.errors import DropNotFound, InvalidInput, ProductNotFound
from db.values import as_text

DROP_COLUMNS = "id, name, starts_at, admit_per_second, max_active, pass_ttl_seconds, created_at, ended_at"
# How long a process trusts its copy of a drop (its products and policy do not change; only the
# end does, and the line's own state in Redis says that at once).
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class DropRecord:
    id: int
    name: str
    starts_at: datetime
    admit_per_second: float | None
    max_active: int | None
    pass_ttl_seconds: int
    created_at: datetime
    ended_at: datetime | None
    product_ids: tuple[int, ...]
    # Units one admitted shopper may take: the largest maxPerCustomer of the products, 1 where none.
    per_buyer: int

    @property
    def starts_ms(self) -> int:
        return int(self.starts_at.timestamp() * 1000)


@dataclass(frozen=True)
class NewDrop:
    name: str
    starts_at: datetime
    product_ids: tuple[int, ...]
    admit_per_second: float | None
    max_active: int | None
    pass_ttl_seconds: int


_SELECT = (
    f"SELECT {', '.join('d.' + c.strip() for c in DROP_COLUMNS.split(','))}, "
    "array_agg(dp.product_id ORDER BY dp.product_id) AS product_ids, "
    "max(coalesce(p.max_per_customer, 1)) AS per_buyer "
    "FROM drops d JOIN drop_products dp ON dp.drop_id = d.id JOIN products p ON p.id = dp.product_id "
)


def _record(row: object) -> DropRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return DropRecord(
        id=r["id"], name=r["name"], starts_at=r["starts_at"], admit_per_second=r["admit_per_second"],
        max_active=r["max_active"], pass_ttl_seconds=r["pass_ttl_seconds"], created_at=r["created_at"],
        ended_at=r["ended_at"], product_ids=tuple(r["product_ids"]), per_buyer=int(r["per_buyer"]),
    )


class Drops:
    def __init__(self, backends: Backends) -> None:
        self._backends = backends
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._sessions = backends.sessions
        self._cache: dict[int, tuple[float, DropRecord]] = {}

    async def create(self, new: NewDrop) -> DropRecord:
        pids = sorted(set(new.product_ids))
        async with self._sessions() as session:
            try:
                async with session.begin():
                    # Locked as a stock rebuild locks them (FOR SHARE): see the module's docstring.
                    found = {
                        r.product_id for r in await session.execute(
                            text("SELECT product_id FROM product_stock WHERE product_id = ANY(:ids) "
                                 "ORDER BY product_id FOR UPDATE"), {"ids": pids})
                    }
                    for index, pid in enumerate(new.product_ids):
                        if pid not in found:
                            raise ProductNotFound(f"no product with id {pid}", field=f"input.productIds[{index}]",
                                                  product_id=pid)
                    busy = (await session.execute(
                        text("SELECT product_id, drop_id FROM drop_products WHERE product_id = ANY(:ids) AND NOT ended "
                             "ORDER BY product_id LIMIT 1"), {"ids": pids})).first()
                    if busy is not None:
                        raise InvalidInput(f"product {busy.product_id} is already in drop {busy.drop_id}, which has "
                                           "not ended", field="input.productIds", product_id=busy.product_id)
                    drop_id = (await session.execute(
                        text("INSERT INTO drops (name, starts_at, admit_per_second, max_active, pass_ttl_seconds) "
                             "VALUES (:name, :starts_at, :rate, :max_active, :ttl) RETURNING id"),
                        {"name": new.name, "starts_at": new.starts_at, "rate": new.admit_per_second,
                         "max_active": new.max_active, "ttl": new.pass_ttl_seconds},
                    )).scalar_one()
                    await session.execute(
                        text("INSERT INTO drop_products (drop_id, product_id) "
                             "SELECT :drop, unnest(CAST(:ids AS bigint[]))"),
                        {"drop": drop_id, "ids": pids},
                    )
                    record = _record((await session.execute(
                        text(_SELECT + "WHERE d.id = :id GROUP BY d.id"), {"id": drop_id})).one())
                    await self._write_policy(record)
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for pid in pids:
                            pipe.hset(keys.product_info(pid), "drop", str(drop_id))
                        await pipe.execute()
            except IntegrityError as exc:
                if "drop_products_live_product" in str(exc.orig):
                    raise InvalidInput("a product of this drop was put into another drop meanwhile",
                                       field="input.productIds") from None
                raise
        await self._redis.sadd(keys.DROPS_LIVE, str(record.id))
        self._cache[record.id] = (time.monotonic(), record)
        return record

    async def end(self, drop_id: int) -> DropRecord:
        """End a drop (again is no error): its line closes and its products sell as any other."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                text("UPDATE drops SET ended_at = now() WHERE id = :id AND ended_at IS NULL"), {"id": drop_id})
            await session.execute(text("UPDATE drop_products SET ended = true WHERE drop_id = :id"), {"id": drop_id})
            row = (await session.execute(text(_SELECT + "WHERE d.id = :id GROUP BY d.id"), {"id": drop_id})).first()
        if row is None:
            raise DropNotFound(f"no drop with id {drop_id}")
        record = _record(row)
        await self._scripts.drop_end(drop_id)
        await self.forget_products(record.product_ids, drop_id)
        await self._redis.srem(keys.DROPS_LIVE, str(drop_id))
        self._cache[drop_id] = (time.monotonic(), record)
        return record

    async def forget_products(self, product_ids: Sequence[int], drop_id: int) -> None:
        """Clear the sale facts' drop name of products whose drop ended (or never committed)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for pid in product_ids:
                pipe.hget(keys.product_info(pid), "drop")
            names = await pipe.execute()
        stale = [pid for pid, name in zip(product_ids, names, strict=True)
                 if name is not None and as_text(name) == str(drop_id)]
        for pid in stale:
            await self._redis.hset(keys.product_info(pid), "drop", "")

    async def _write_policy(self, record: DropRecord) -> None:
        await self._scripts.drop_setup(
            record.id, starts_ms=record.starts_ms, rate=record.admit_per_second, max_active=record.max_active,
            pass_ttl_ms=record.pass_ttl_seconds * 1000, per_buyer=record.per_buyer, product_ids=record.product_ids,
            ended=record.ended_at is not None,
        )

    async def get(self, drop_id: int) -> DropRecord | None:
        async with self._sessions() as session:
            row = (await session.execute(text(_SELECT + "WHERE d.id = :id GROUP BY d.id"), {"id": drop_id})).first()
        record = _record(row) if row is not None else None
        if record is not None:
            self._cache[drop_id] = (time.monotonic(), record)
        return record

    async def cached(self, drop_id: int) -> DropRecord | None:
        """The drop, from this process' copy if it is fresh (the buying and line paths ask often)."""
        hit = self._cache.get(drop_id)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        return await self.get(drop_id)

    async def restore_policy(self, drop_id: int) -> DropRecord | None:
        """Write a drop's policy into Redis again from PostgreSQL (after a flush); None if unknown."""
        record = await self.get(drop_id)
        if record is not None:
            await self._write_policy(record)
            if record.ended_at is None:
                await self._redis.sadd(keys.DROPS_LIVE, str(drop_id))
        return record

    async def live_for_products(self, product_ids: Sequence[int]) -> list[DropRecord | None]:
        """The live drop of each product, in order; None where a product is in none."""
        if not product_ids:
            return []
        async with self._sessions() as session:
            rows = (await session.execute(
                text("SELECT product_id, drop_id FROM drop_products WHERE product_id = ANY(:ids) AND NOT ended"),
                {"ids": list(product_ids)},
            )).all()
        by_product = {r.product_id: r.drop_id for r in rows}
        drops = {d: await self.cached(d) for d in set(by_product.values())}
        return [drops.get(by_product[pid]) if pid in by_product else None for pid in product_ids]

    async def live_ids(self) -> list[int]:
        return sorted(int(m) for m in await self._redis.smembers(keys.DROPS_LIVE))
