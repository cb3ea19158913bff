"""The product catalogue: PostgreSQL rows behind a cache-aside Redis copy.

Cache misses and listings may be read from a replica (db.read_replica). A change writes its
committed row into the cache rather than only deleting the entry, so the miss that follows a
change does not cache a lagging replica's older row for a whole TTL.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import keys
from db.errors import InvalidInput, ProductNotFound
from db.read_replica import Reads
from db.state_redis import StateRedis, mget
from db.stock import StockCounters

PRODUCT_COLUMNS = "id, sku, name, description, price_cents, currency, max_per_customer, image_url"


@dataclass(frozen=True)
class ProductRecord:
    id: int
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    max_per_customer: int | None
    image_url: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ProductRecord:
        return cls(**json.loads(raw))

    @classmethod
    def from_row(cls, row: Any) -> ProductRecord:
        return cls(
            id=row.id,
            sku=row.sku,
            name=row.name,
            description=row.description,
            price_cents=row.price_cents,
            currency=row.currency.strip(),
            max_per_customer=row.max_per_customer,
            image_url=row.image_url,
        )


@dataclass(frozen=True)
class NewProduct:
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    max_per_customer: int | None
    image_url: str | None


@dataclass(frozen=True)
class ProductPage:
    items: list[ProductRecord]
    has_next_page: bool


# product_stock.stock is a 32-bit column and `available` a GraphQL Int.
MAX_UNITS = 2**31 - 1

# Columns productUpdate may change; the keys are what callers pass.
UPDATABLE = ("name", "description", "price_cents", "max_per_customer", "image_url")


class Catalog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: StateRedis,
        stock: StockCounters,
        cache_ttl_seconds: int = 300,
        reads: Reads | None = None,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._stock = stock
        self._ttl = cache_ttl_seconds
        self._reads = reads or Reads(sessions, None, cache)

    def _ttl_with_jitter(self) -> int:
        # Jitter spreads expiries so a hot catalogue does not miss all at once.
        return max(1, int(self._ttl * random.uniform(0.9, 1.1)))

    async def get_many(self, product_ids: Sequence[int]) -> list[ProductRecord | None]:
        """Products by id in the given order (None where unknown): one MGET, one query for misses."""
        if not product_ids:
            return []
        cached = await mget(self._cache, [keys.product(pid) for pid in product_ids])
        found: dict[int, ProductRecord] = {}
        for pid, raw in zip(product_ids, cached, strict=True):
            if raw is not None:
                found[pid] = ProductRecord.from_json(raw)
        misses = sorted({pid for pid in product_ids if pid not in found})
        if misses:

            async def load(session: AsyncSession) -> list[ProductRecord]:
                rows = await session.execute(
                    text(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY(:ids)"), {"ids": misses}
                )
                return [ProductRecord.from_row(row) for row in rows]

            loaded = await self._reads.run(load)
            if loaded:
                await self._cache_records(loaded)
            found.update({record.id: record for record in loaded})
        return [found.get(pid) for pid in product_ids]

    async def _cache_records(self, records: Sequence[ProductRecord]) -> None:
        async with self._cache.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.set(keys.product(record.id), record.to_json(), ex=self._ttl_with_jitter())
            await pipe.execute()

    async def get(self, product_id: int) -> ProductRecord | None:
        return (await self.get_many([product_id]))[0]

    async def list(self, first: int, after: int | None, search: str | None) -> ProductPage:
        clauses = ["TRUE"]
        params: dict[str, Any] = {"limit": first + 1}
        if after is not None:
            clauses.append("id > :after")
            params["after"] = after
        if search:
            # Escape LIKE wildcards so a search for "50%" means the text "50%".
            pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("(name ILIKE :pattern OR sku ILIKE :pattern)")
            params["pattern"] = f"%{pattern}%"
        query = (
            f"SELECT {PRODUCT_COLUMNS} FROM products WHERE {' AND '.join(clauses)} ORDER BY id LIMIT :limit"
        )

        async def page(session: AsyncSession) -> list[Any]:
            return list((await session.execute(text(query), params)).all())

        rows = await self._reads.run(page)
        items = [ProductRecord.from_row(row) for row in rows[:first]]
        return ProductPage(items=items, has_next_page=len(rows) > first)

    async def create(self, new: NewProduct) -> ProductRecord:
        async with self._sessions() as session:
            try:
                async with session.begin():
                    row = (
                        await session.execute(
                            text(
                                "WITH product AS (INSERT INTO products (sku, name, description, price_cents,"
                                " currency, max_per_customer, image_url) VALUES (:sku, :name, :description,"
                                " :price_cents, :currency, :max_per_customer, :image_url)"
                                f" RETURNING {PRODUCT_COLUMNS}), stock AS (INSERT INTO product_stock"
                                " (product_id, stock) SELECT id, :stock FROM product) "
                                f"SELECT {PRODUCT_COLUMNS} FROM product"
                            ),
                            {
                                "sku": new.sku,
                                "name": new.name,
                                "description": new.description,
                                "price_cents": new.price_cents,
                                "currency": new.currency,
                                "stock": new.stock,
                                "max_per_customer": new.max_per_customer,
                                "image_url": new.image_url,
                            },
                        )
                    ).one()
            except IntegrityError as exc:
                if "products_sku_key" in str(exc.orig):
                    raise InvalidInput(f"sku {new.sku!r} is already in use", field="sku") from None
                raise
        record = ProductRecord.from_row(row)
        await self._stock.set_sale_facts(record.id, record.price_cents, record.currency, record.max_per_customer)
        await self._stock.set_initial(record.id, new.stock)
        await self._cache_records([record])
        return record

    async def update(self, product_id: int, changes: dict[str, Any]) -> ProductRecord:
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise InvalidInput(f"cannot update {sorted(unknown)}", field=sorted(unknown)[0])
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    text(
                        f"UPDATE products SET {assignments}{', ' if assignments else ''}updated_at = now() "
                        f"WHERE id = :id RETURNING {PRODUCT_COLUMNS}"
                    ),
                    {**changes, "id": product_id},
                )
            ).one_or_none()
        if row is None:
            raise ProductNotFound(product_id=product_id)
        record = ProductRecord.from_row(row)
        await self._stock.set_sale_facts(record.id, record.price_cents, record.currency, record.max_per_customer)
        await self._cache_records([record])
        return record

    async def adjust_stock(self, product_id: int, delta: int) -> ProductRecord:
        async with self._sessions() as session:
            async with session.begin():
                stock = (
                    await session.execute(
                        text("SELECT stock FROM product_stock WHERE product_id = :id FOR UPDATE"),
                        {"id": product_id},
                    )
                ).scalar_one_or_none()
                if stock is None:
                    raise ProductNotFound(product_id=product_id)
                if stock + delta > MAX_UNITS:
                    raise InvalidInput(f"stock cannot exceed {MAX_UNITS} units; it is {stock}", field="delta",
                                       product_id=product_id, available=stock)
                if stock + delta < 0:
                    raise InvalidInput(
                        f"only {stock} units are not held by orders; cannot write off {-delta}",
                        field="delta",
                        product_id=product_id,
                        available=stock,
                    )
                await session.execute(
                    text("UPDATE product_stock SET stock = stock + :delta WHERE product_id = :id"),
                    {"delta": delta, "id": product_id},
                )
                row = (
                    await session.execute(
                        text(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = :id"), {"id": product_id}
                    )
                ).one()
                if delta < 0:
                    await self._stock.take_in_transaction(product_id, delta)
                else:
                    epoch = (await self._stock.epochs([product_id]))[product_id]
        if delta > 0:
            await self._stock.give_back(product_id, delta, epoch)
        await self._cache.delete(keys.product(product_id))
        return ProductRecord.from_row(row)
