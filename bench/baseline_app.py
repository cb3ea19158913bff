"""The baseline: the obvious design, done synchronously in PostgreSQL, as well as it allows.

A Strawberry `placeOrder` with rushcart's request guards (token limit, depth and alias rules,
parser and validation caches, error masking) and the same answer shape, on the same tables.
Each purchase is one transaction on a pooled asyncpg connection, four round trips:

1. `BEGIN` and a transaction-scoped advisory lock on the customer (one simple query), so the
   idempotency and purchase-limit checks below cannot race the same customer's other orders;
2. one statement: the product rows `FOR UPDATE` in id order (no deadlocks), the customer's
   units already bought of them, and the order an idempotency key already made;
3. one statement: INSERT the order and its items and decrement the stock (data-modifying CTEs),
   or nothing when a check failed;
4. `COMMIT` (or `ROLLBACK`).

Bearer tokens are the ones rushcart issued, read from Redis as rushcart does. No Redis counter
is kept: PostgreSQL's `product_stock` is the only truth here, so there is nothing to drain.

Served by uvicorn: `python -m uvicorn bench.baseline_app:create_app --factory`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import strawberry
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import Info
from uuid6 import uuid7

from bench.health import readyz
from db import keys
from db.engine import asyncpg_dsn
from schema import guard_rules
from schema.persisted import PersistedOperations
from server.graphql_view import RushcartGraphQL
from server.settings import Settings
from server.state import freeze_startup_heap

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_LINES = 50
MAX_LINE_QUANTITY = 100

LOCK_AND_CHECK = """
WITH locked AS (
    SELECT p.id, p.name, s.stock, p.price_cents, p.currency, p.max_per_customer
    FROM products p JOIN product_stock s ON s.product_id = p.id
    WHERE p.id = ANY($1::bigint[]) ORDER BY p.id FOR UPDATE OF s
), bought AS (
    SELECT i.product_id, sum(i.quantity)::int AS units FROM order_items i
    JOIN orders o ON o.customer_id = i.customer_id AND o.id = i.order_id
    WHERE i.customer_id = $2 AND i.product_id = ANY($1::bigint[]) AND o.status <> 'CANCELLED'
    GROUP BY i.product_id
)
SELECT l.id, l.name, l.stock, l.price_cents, l.currency, l.max_per_customer, coalesce(b.units, 0) AS bought,
       (SELECT o.id FROM orders o WHERE o.customer_id = $2 AND o.idempotency_key = $3 LIMIT 1) AS existing
FROM locked l LEFT JOIN bought b ON b.product_id = l.id ORDER BY l.id
"""

WRITE = """
WITH new_order AS (
    INSERT INTO orders (customer_id, id, status, total_cents, currency, idempotency_key, created_at, expires_at)
    VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7)
), new_items AS (
    INSERT INTO order_items (customer_id, order_id, product_id, quantity, unit_price_cents)
    SELECT $1, $2, l.pid, l.qty, l.price FROM unnest($8::bigint[], $9::int[], $10::int[]) AS l(pid, qty, price)
)
UPDATE product_stock s SET stock = s.stock - l.qty
FROM unnest($8::bigint[], $9::int[]) AS l(pid, qty) WHERE s.product_id = l.pid
"""

READ_ORDER = """
SELECT o.id, o.status, o.total_cents, o.currency, o.created_at, o.expires_at,
       i.product_id, i.quantity, i.unit_price_cents, p.name, p.price_cents
FROM orders o JOIN order_items i ON i.customer_id = o.customer_id AND i.order_id = o.id
JOIN products p ON p.id = i.product_id
WHERE o.customer_id = $1 AND o.id = $2 ORDER BY i.product_id
"""


class Refused(Exception):
    """An expected failure; becomes a UserError in the payload, as in rushcart."""

    def __init__(self, code: str, message: str, product_id: int | None = None, available: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.product_id, self.available = code, message, product_id, available


@strawberry.enum
class OrderStatus(Enum):
    PENDING = "PENDING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


@strawberry.input
class OrderLineInput:
    product_id: strawberry.ID
    quantity: int


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    price_cents: int


@strawberry.type
class OrderLine:
    product: Product
    quantity: int
    unit_price_cents: int


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    lines: list[OrderLine]
    total_cents: int
    currency: str
    created_at: datetime
    expires_at: datetime


@strawberry.type
class UserError:
    code: str
    message: str
    field: str | None = None
    product_id: strawberry.ID | None = None
    available: int | None = None


@strawberry.type
class CheckoutPayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


class Context:
    def __init__(self, pool: asyncpg.Pool, redis: Any, headers: Any, payment_ttl_seconds: int) -> None:
        self.pool, self.redis, self.headers, self.payment_ttl_seconds = pool, redis, headers, payment_ttl_seconds

    async def customer_id(self) -> int:
        scheme, _, token = (self.headers.get("authorization") or "").partition(" ")
        raw = await self.redis.get(keys.token(token.strip())) if scheme.lower() == "bearer" and token else None
        if raw is None:
            raise Refused("NOT_AUTHENTICATED", "sign in first")
        return int(raw.decode().split(":")[0])


def _lines(lines: list[OrderLineInput]) -> list[tuple[int, int]]:
    merged: dict[int, int] = {}
    for line in lines:
        try:
            pid = int(line.product_id)
        except ValueError:
            raise Refused("INVALID_INPUT", "not a product id") from None
        if not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            raise Refused("INVALID_INPUT", f"quantity must be between 1 and {MAX_LINE_QUANTITY}")
        merged[pid] = merged.get(pid, 0) + line.quantity
    if not merged or len(merged) > MAX_LINES or max(merged.values()) > MAX_LINE_QUANTITY:
        raise Refused("INVALID_INPUT", "an order holds 1 to 50 lines of at most 100 units")
    return sorted(merged.items())


async def _read_order(conn: asyncpg.Connection, customer_id: int, order_id: Any) -> Order:
    rows = await conn.fetch(READ_ORDER, customer_id, order_id)
    head = rows[0]
    return Order(
        id=strawberry.ID(str(head["id"])), status=OrderStatus(head["status"]), total_cents=head["total_cents"],
        currency=head["currency"].strip(), created_at=head["created_at"], expires_at=head["expires_at"],
        lines=[OrderLine(product=Product(id=strawberry.ID(str(r["product_id"])), name=r["name"],
                                         price_cents=r["price_cents"]),
                         quantity=r["quantity"], unit_price_cents=r["unit_price_cents"]) for r in rows],
    )


def _check(rows: list[asyncpg.Record], lines: list[tuple[int, int]]) -> str:
    """Raise Refused unless every line can be bought; returns the order's currency."""
    found = {row["id"]: row for row in rows}
    for pid, qty in lines:
        row = found.get(pid)
        if row is None:
            raise Refused("PRODUCT_NOT_FOUND", f"no product with id {pid}", pid)
        if row["stock"] < qty:
            raise Refused("OUT_OF_STOCK", f"only {row['stock']} left of product {pid}", pid, row["stock"])
        limit = row["max_per_customer"]
        if limit is not None and row["bought"] + qty > limit:
            left = max(limit - row["bought"], 0)
            raise Refused("PURCHASE_LIMIT_EXCEEDED", f"you may buy {left} more of product {pid}", pid, left)
    currencies = {row["currency"].strip() for row in rows}
    if len(currencies) != 1:
        raise Refused("INVALID_INPUT", "all lines of an order must share one currency")
    return currencies.pop()


async def place_order(ctx: Context, customer_id: int, lines: list[tuple[int, int]], key: str) -> Order:
    pids = [pid for pid, _ in lines]
    qtys = [qty for _, qty in lines]
    async with ctx.pool.acquire() as conn:
        # Simple-query protocol: BEGIN and the lock share one round trip (customer_id is an int).
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(customer_id)})")
        try:
            rows = await conn.fetch(LOCK_AND_CHECK, pids, customer_id, key)
            existing = rows[0]["existing"] if rows else None
            if existing is not None:
                replayed = await _read_order(conn, customer_id, existing)
            else:
                replayed = None
                currency = _check(rows, lines)
                names = {row["id"]: row["name"] for row in rows}
                prices = {row["id"]: row["price_cents"] for row in rows}
                order_id = str(uuid7())
                now = datetime.now(UTC)
                expires = now + timedelta(seconds=ctx.payment_ttl_seconds)
                total = sum(prices[pid] * qty for pid, qty in lines)
                await conn.execute(WRITE, customer_id, order_id, total, currency, key, now, expires, pids, qtys,
                                   [prices[pid] for pid in pids])
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.is_closed():
                await conn.execute("ROLLBACK")
            raise
    if replayed is not None:
        if sorted((int(line.product.id), line.quantity) for line in replayed.lines) != lines:
            raise Refused("IDEMPOTENCY_KEY_REUSED", "this idempotency key was used for a different order")
        return replayed
    return Order(
        id=strawberry.ID(order_id), status=OrderStatus.PENDING, total_cents=total, currency=currency,
        created_at=now, expires_at=expires,
        lines=[OrderLine(product=Product(id=strawberry.ID(str(pid)), name=names[pid], price_cents=prices[pid]),
                         quantity=qty, unit_price_cents=prices[pid]) for pid, qty in lines],
    )


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> bool:
        return True


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def place_order(self, info: Info[Context, None], lines: list[OrderLineInput],
                          idempotency_key: str) -> CheckoutPayload:
        ctx = info.context
        try:
            customer_id = await ctx.customer_id()
            if not IDEMPOTENCY_KEY.match(idempotency_key):
                raise Refused("INVALID_INPUT", "idempotencyKey must be 1-128 letters, digits, '.', '_', ':' or '-'")
            order = await place_order(ctx, customer_id, _lines(lines), idempotency_key)
        except Refused as exc:
            pid = strawberry.ID(str(exc.product_id)) if exc.product_id is not None else None
            return CheckoutPayload(errors=[UserError(code=exc.code, message=exc.message, product_id=pid,
                                                     available=exc.available)])
        return CheckoutPayload(order=order)


def _should_mask(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The same guards as rushcart's schema (schema/__init__.py), so both pay for them.
    rules = guard_rules(settings.graphql_limits())
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        lambda: MaskErrors(should_mask_error=_should_mask),
    ]
    return strawberry.Schema(query=Query, mutation=Mutation, extensions=extensions)


class BaselineGraphQL(RushcartGraphQL):
    """rushcart's view, persisted operations included, with the baseline's context."""

    async def get_context(self, request: Request | WebSocket, response: Response | None) -> Context:  # type: ignore[override]
        app = request.app
        return Context(app.state.pool, app.state.redis, request.headers, app.state.payment_ttl_seconds)


async def _no_reset(conn: asyncpg.Connection) -> None:
    # Every transaction ends in COMMIT or ROLLBACK; asyncpg's default reset query would cost
    # each request one more round trip for nothing.
    return None


def create_app() -> Starlette:
    settings = Settings.from_env()
    pool_size = int(os.environ.get("DB_POOL_SIZE") or settings.db_pool_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # As rushcart's engine: pool_size connections kept, as many again on demand.
        app.state.pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.database_url), min_size=pool_size, max_size=2 * pool_size, reset=_no_reset,
            server_settings={"application_name": "rushcart-baseline"},
        )
        app.state.redis = aioredis.Redis.from_url(settings.redis_url, max_connections=256)
        app.state.payment_ttl_seconds = settings.order_payment_ttl_seconds
        freeze_startup_heap()  # as the API does
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    async def ready(request: Request) -> Response:
        pool: asyncpg.Pool = request.app.state.pool
        return await readyz({"postgresql": lambda: pool.fetchval("SELECT 1"), "redis": request.app.state.redis.ping})

    schema = build_schema(settings)
    graphql = BaselineGraphQL(schema, graphql_ide=None)
    # The buying operation by the same documentId as rushcart's, run from a plan as there.
    graphql.persisted = PersistedOperations.load(schema, settings.graphql_limits(), names={"PlaceOrder"})
    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"]), Route("/readyz", ready)],
                     lifespan=lifespan)
