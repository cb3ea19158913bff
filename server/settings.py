"""Settings: read once from the environment at start-up, typed, documented in the README."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from db import buckets

if TYPE_CHECKING:
    from schema import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# What sits between rushcart and PostgreSQL (DATABASE_POOLER): nothing, or a transaction-pooling
# PgBouncer older than 1.21, which cannot carry prepared statements between transactions.
POOLERS = ("none", "pgbouncer")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bounded(env: dict[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _int(env, name, default, minimum)
    if value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


def _origins(env: dict[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated origins (`https://shop.example`, or `*` for any); empty means none."""
    origins = tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if origin != "*" and (scheme not in {"http", "https"} or not rest or "/" in rest):
            raise SettingsError(f"{name} must list origins such as https://shop.example (scheme and host, "
                                f"no path) or *, got {origin!r}")
    return origins


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, the first by default."""
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    # Every field maps to the upper-case environment variable of the same name.
    rushcart_env: str = "development"
    database_url: str = ""
    redis_url: str = ""
    cache_redis_url: str = ""
    queue_redis_url: str = ""
    redis_buckets: int = 16
    rushcart_data_dir: str = str(PROJECT_ROOT / ".data")
    payment_webhook_secret: str = ""
    order_payment_ttl_seconds: int = 900
    expiry_sweep_seconds: int = 30
    persist_batch_size: int = 500
    persist_sweep_seconds: int = 10
    cart_flush_seconds: int = 2
    guest_cart_ttl_days: int = 30
    customer_cart_ttl_days: int = 90
    session_ttl_seconds: int = 30 * 86400
    token_ttl_seconds: int = 14 * 86400
    product_cache_ttl_seconds: int = 300
    order_partitions: int = 16
    graphiql: bool = True
    introspection: bool = True
    max_query_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    db_pool_size: int = 10
    # "pgbouncer": a transaction-pooling PgBouncer before 1.21 is in front (db.engine.make_engine).
    database_pooler: str = "none"
    database_read_url: str = ""
    login_attempts_per_window: int = 10
    login_attempts_per_client: int = 50
    login_attempts_per_account: int = 200
    login_window_seconds: int = 300
    session_starts_per_minute: int = 60
    # New places in drop lines one client address may take a minute (bots opening many sessions).
    drop_joins_per_minute: int = 20
    session_secret: str = ""
    trusted_proxies: str = ""
    # Empty: commands find a running `rushcart dev` and call it where it listens (server.services).
    public_base_url: str = ""
    cors_origins: tuple[str, ...] = ()
    # A request's headers, and its body after them, must arrive within these (server/timeouts.py).
    request_header_timeout_seconds: int = 10
    request_body_timeout_seconds: int = 10
    # WebSocket permessage-deflate: halves bytes on the wire for clients that offer it, but costs
    # ~50 KB of zlib state per connection and CPU per message; off unless bandwidth is dearer.
    ws_deflate: bool = False
    # Seconds a WebSocket may stay open without connection_init (both protocols).
    ws_init_timeout_seconds: int = 10
    # Reserve an order in steps, one slot each, as a cluster needs (db.reservation), on one node too.
    reserve_in_steps: bool = False
    # REDIS_URL names any node of a Redis/Valkey Cluster; QUEUE_REDIS_URL is then required.
    redis_cluster: bool = False
    # An order or a cancellation is answered only once this many replicas of every shard it
    # touched hold it (WAIT after its writes).
    redis_wait_replicas: int = 0
    secret_generated: bool = field(default=False, compare=False)

    @property
    def in_steps(self) -> bool:
        """Changes whose keys span slots run as steps of one slot each: on a cluster, or when asked."""
        return self.reserve_in_steps or self.redis_cluster

    @property
    def production(self) -> bool:
        return self.rushcart_env == "production"

    @property
    def dev(self) -> bool:
        return not self.production

    @property
    def session_key(self) -> bytes:
        """The key guest session ids are signed with: SESSION_SECRET, else one derived from the
        webhook secret (so a deployment has one secret to keep, and rotating it ends guest sessions)."""
        from db.session_ids import derive_secret

        return derive_secret(self.session_secret or self.payment_webhook_secret, "guest session ids")

    @property
    def statement_cache(self) -> bool:
        """Whether PostgreSQL connections may cache prepared statements (not through PgBouncer < 1.21)."""
        return self.database_pooler == "none"

    @property
    def effective_queue_redis_url(self) -> str:
        return self.queue_redis_url or self.redis_url

    @property
    def effective_cache_redis_url(self) -> str:
        return self.cache_redis_url or self.redis_url

    def graphql_limits(self) -> Limits:
        from schema import Limits

        return Limits(max_depth=self.max_query_depth, max_aliases=self.max_aliases, max_tokens=self.max_tokens,
                      introspection=self.introspection)

    def with_urls(self, database_url: str, redis_url: str) -> Settings:
        from dataclasses import replace

        return replace(self, database_url=database_url, redis_url=redis_url)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        rushcart_env = env.get("RUSHCART_ENV", "development")
        if rushcart_env not in {"development", "production", "test"}:
            raise SettingsError(f"RUSHCART_ENV must be development, production or test, got {rushcart_env!r}")
        production = rushcart_env == "production"
        secret = env.get("PAYMENT_WEBHOOK_SECRET", "")
        generated = False
        if not secret:
            if production:
                raise SettingsError("PAYMENT_WEBHOOK_SECRET is required when RUSHCART_ENV=production")
            secret = "whsec_" + secrets.token_hex(24)
            generated = True
        elif production and len(secret) < 24:
            raise SettingsError("PAYMENT_WEBHOOK_SECRET must be at least 24 characters in production")
        if production and (not env.get("DATABASE_URL") or not env.get("REDIS_URL")):
            raise SettingsError("DATABASE_URL and REDIS_URL are required when RUSHCART_ENV=production")
        cluster = _bool(env, "REDIS_CLUSTER", False)
        if cluster and not env.get("QUEUE_REDIS_URL"):
            # RQ cannot run on a cluster (its queues' keys span slots in one transaction).
            raise SettingsError("REDIS_CLUSTER=true needs QUEUE_REDIS_URL: a standalone Redis or Valkey for "
                                "the job queues, which cannot live on a cluster")
        return cls(
            rushcart_env=rushcart_env,
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL", ""),
            cache_redis_url=env.get("CACHE_REDIS_URL", ""),
            queue_redis_url=env.get("QUEUE_REDIS_URL", ""),
            redis_buckets=_bounded(env, "REDIS_BUCKETS", 16, 1, buckets.MAX_COUNT),
            rushcart_data_dir=env.get("RUSHCART_DATA_DIR") or cls.rushcart_data_dir,
            payment_webhook_secret=secret,
            secret_generated=generated,
            order_payment_ttl_seconds=_int(env, "ORDER_PAYMENT_TTL_SECONDS", 900, 1),
            expiry_sweep_seconds=_int(env, "EXPIRY_SWEEP_SECONDS", 30, 1),
            persist_batch_size=_int(env, "PERSIST_BATCH_SIZE", 500, 1),
            persist_sweep_seconds=_int(env, "PERSIST_SWEEP_SECONDS", 10, 1),
            cart_flush_seconds=_int(env, "CART_FLUSH_SECONDS", 2, 1),
            guest_cart_ttl_days=_int(env, "GUEST_CART_TTL_DAYS", 30, 1),
            customer_cart_ttl_days=_int(env, "CUSTOMER_CART_TTL_DAYS", 90, 1),
            session_ttl_seconds=_int(env, "SESSION_TTL_SECONDS", 30 * 86400, 60),
            token_ttl_seconds=_int(env, "TOKEN_TTL_SECONDS", 14 * 86400, 60),
            product_cache_ttl_seconds=_int(env, "PRODUCT_CACHE_TTL_SECONDS", 300, 1),
            order_partitions=_int(env, "ORDER_PARTITIONS", 16, 1),
            graphiql=_bool(env, "GRAPHIQL", not production),
            introspection=_bool(env, "INTROSPECTION", not production),
            max_query_depth=_int(env, "MAX_QUERY_DEPTH", 10, 2),
            max_aliases=_int(env, "MAX_ALIASES", 15, 1),
            max_tokens=_int(env, "MAX_TOKENS", 2000, 50),
            db_pool_size=_int(env, "DB_POOL_SIZE", 10, 1),
            database_pooler=_choice(env, "DATABASE_POOLER", POOLERS),
            database_read_url=env.get("DATABASE_READ_URL", ""),
            login_attempts_per_window=_int(env, "LOGIN_ATTEMPTS_PER_WINDOW", 10, 1),
            login_attempts_per_client=_int(env, "LOGIN_ATTEMPTS_PER_CLIENT", 50, 1),
            login_attempts_per_account=_int(env, "LOGIN_ATTEMPTS_PER_ACCOUNT", 200, 1),
            login_window_seconds=_int(env, "LOGIN_WINDOW_SECONDS", 300, 1),
            session_starts_per_minute=_int(env, "SESSION_STARTS_PER_MINUTE", 60, 1),
            drop_joins_per_minute=_int(env, "DROP_JOINS_PER_MINUTE", 20, 1),
            session_secret=env.get("SESSION_SECRET", ""),
            trusted_proxies=env.get("TRUSTED_PROXIES", ""),
            public_base_url=env.get("PUBLIC_BASE_URL", ""),
            cors_origins=_origins(env, "CORS_ORIGINS"),
            request_header_timeout_seconds=_int(env, "REQUEST_HEADER_TIMEOUT_SECONDS", 10, 1),
            request_body_timeout_seconds=_int(env, "REQUEST_BODY_TIMEOUT_SECONDS", 10, 1),
            ws_deflate=_bool(env, "WS_DEFLATE", False),
            reserve_in_steps=_bool(env, "RESERVE_IN_STEPS", False),
            redis_cluster=cluster,
            redis_wait_replicas=_int(env, "REDIS_WAIT_REPLICAS", 0, 0),
            ws_init_timeout_seconds=_int(env, "WS_INIT_TIMEOUT_SECONDS", 10, 1),
        )


def known_variables() -> set[str]:
    """Names of every environment variable the settings read."""
    return {f.name.upper() for f in fields(Settings) if f.name != "secret_generated"}
