"""One async engine per process, built from a libpq-style URL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(database_url: str) -> str:
    """`postgresql://...` (as libpq and the embedded server write it) -> the asyncpg dialect."""
    url = make_url(database_url)
    if url.drivername in {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"}:
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def asyncpg_dsn(database_url: str) -> str:
    """The same URL as asyncpg itself takes it (no dialect suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def make_engine(
    database_url: str, pool_size: int = 10, *, statement_cache: bool = True, connect_timeout: float | None = None
) -> AsyncEngine:
    """`statement_cache=False` for a transaction-pooling PgBouncer older than 1.21, which hands each
    transaction whichever server connection is free and does not carry prepared statements
    between them: asyncpg then keeps no statement cache (a Parse per query), and SQLAlchemy's
    dialect names the statements it prepares uniquely, so two clients sharing a server connection
    never meet each other's names."""
    connect_args: dict[str, Any] = {"server_settings": {"application_name": "rushcart"}}
    if not statement_cache:
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_unique_statement_name,
        )
    if connect_timeout is not None:
        connect_args["timeout"] = connect_timeout
    return create_async_engine(
        async_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
