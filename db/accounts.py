"""Customers, argon2 password hashes, bearer tokens and guest sessions."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import keys
from db.backends import Backends
from db.errors import EmailTaken, InvalidCredentials, RateLimited
from db.session_ids import SessionIds
from db.state_redis import delete_and_publish
from db.values import as_text

# A resolved token is trusted this long without asking Redis; a logout anywhere reaches every
# process through pub/sub at once, so this bounds staleness only when pub/sub itself is down.
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 100_000

_hasher = PasswordHasher()
# Verifying against this keeps a sign-in for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not a real password")


@dataclass(frozen=True)
class CustomerRecord:
    id: int
    email: str
    is_staff: bool


@dataclass(frozen=True)
class Viewer:
    """Who a bearer token belongs to, as cached with the token."""

    customer_id: int
    is_staff: bool


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def create_customer(
    sessions: async_sessionmaker[AsyncSession], email: str, password: str, is_staff: bool = False
) -> CustomerRecord:
    # argon2 is deliberately slow (tens of ms of CPU): keep it off the event loop.
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        async with sessions() as session, session.begin():
            row = (
                await session.execute(
                    text(
                        "INSERT INTO customers (email, password_hash, is_staff) "
                        "VALUES (:email, :hash, :staff) RETURNING id, email, is_staff"
                    ),
                    {"email": email, "hash": password_hash, "staff": is_staff},
                )
            ).one()
    except IntegrityError as exc:
        if "customers_email_key" in str(exc.orig):
            raise EmailTaken() from None
        raise
    return CustomerRecord(row.id, row.email, row.is_staff)


@dataclass(frozen=True)
class SignInLimits:
    """Failed sign-ins allowed per window, counted before the password is checked.

    Per account and client address: a stranger guessing from elsewhere does not lock the owner
    out. Per client address over all accounts: one address cannot spray passwords. Per account
    over all addresses (higher): only a distributed guesser can lock an account, for one window.
    """

    per_account_and_client: int = 10
    per_client: int = 50
    per_account: int = 200
    window_seconds: int = 300
    session_starts_per_client_per_minute: int = 60


UNKNOWN_CLIENT = "unknown"


class Accounts:
    def __init__(
        self,
        backends: Backends,
        token_ttl_seconds: int,
        session_ids: SessionIds,
        limits: SignInLimits = SignInLimits(),
    ) -> None:
        self._sessions = backends.sessions
        self._redis = backends.redis
        self._scripts = backends.scripts
        self._token_ttl = token_ttl_seconds
        self._session_ids = session_ids
        self._limits = limits
        # token key -> (viewer, valid until): saves a Redis round trip on every signed-in request.
        self._token_cache: dict[str, tuple[Viewer, float]] = {}
        # token key -> callbacks of open subscriptions made with that token (see on_revoked).
        self._revocation_callbacks: dict[str, set[Callable[[], None]]] = {}

    @property
    def session_ttl_seconds(self) -> int:
        return self._session_ids.ttl_seconds

    async def create_customer(self, email: str, password: str, is_staff: bool = False) -> CustomerRecord:
        return await create_customer(self._sessions, email, password, is_staff)

    async def get_customer(self, customer_id: int) -> CustomerRecord | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    text("SELECT id, email, is_staff FROM customers WHERE id = :id"), {"id": customer_id}
                )
            ).one_or_none()
        return None if row is None else CustomerRecord(row.id, row.email, row.is_staff)

    async def authenticate(self, email: str, password: str, client: str | None = None) -> CustomerRecord:
        limits = self._limits
        client = client or UNKNOWN_CLIENT
        counters = [
            (keys.login_attempts(email, client), limits.per_account_and_client),
            (keys.login_attempts_from(client), limits.per_client),
            (keys.login_attempts(email), limits.per_account),
        ]
        limited = await self._scripts.ratelimit_take(counters, limits.window_seconds)
        if limited is not None:
            which, retry_after = limited
            whose = ("for this email from your address", "from your address", "for this email")[which]
            raise RateLimited(f"too many failed sign-ins {whose}; try again in {retry_after} s")
        async with self._sessions() as session:
            row = (
                await session.execute(
                    text("SELECT id, email, is_staff, password_hash FROM customers WHERE lower(email) = :email"),
                    {"email": email.lower()},
                )
            ).one_or_none()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        ok: bool
        try:
            ok = await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            raise InvalidCredentials()
        # Only failures count: a success gives back what it took, and clears its own address's tally.
        await self._scripts.ratelimit_give_back([key for key, _ in counters], [True, False, False])
        return CustomerRecord(row.id, row.email, row.is_staff)

    async def issue_token(self, customer: CustomerRecord) -> str:
        token = secrets.token_urlsafe(32)
        await self._redis.set(
            keys.token(token), f"{customer.id}:{1 if customer.is_staff else 0}", ex=self._token_ttl
        )
        return token

    async def resolve_token(self, token: str) -> Viewer | None:
        key = keys.token(token)
        cached = self._token_cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        raw = await self._redis.get(key)
        if raw is None:
            return None
        customer_id, staff = as_text(raw).split(":")
        viewer = Viewer(int(customer_id), staff == "1")
        if len(self._token_cache) >= TOKEN_CACHE_SIZE:
            self._token_cache.pop(next(iter(self._token_cache)))
        self._token_cache[key] = (viewer, time.monotonic() + TOKEN_CACHE_SECONDS)
        return viewer

    async def revoke_token(self, token: str) -> bool:
        key = keys.token(token)
        self._token_cache.pop(key, None)
        # Every server process drops its cached copy (see on_token_event).
        return await delete_and_publish(self._redis, key, keys.TOKENS_CHANNEL, json.dumps({"revoked": key}))

    def on_token_event(self, event: dict[str, Any] | None) -> None:
        """Revocations published by any process; None (events may be lost) drops the whole cache."""
        if event is None:
            self._token_cache.clear()
            # Any of them may have been revoked meanwhile: each callback's owner checks again.
            callbacks = [c for group in self._revocation_callbacks.values() for c in group]
        else:
            key = str(event.get("revoked"))
            self._token_cache.pop(key, None)
            callbacks = list(self._revocation_callbacks.get(key, ()))
        for callback in callbacks:
            callback()

    def on_revoked(self, token: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` when `token` may have been revoked (confirm with resolve_token: a lost
        event stream calls every callback). Returns the function that stops watching."""
        key = keys.token(token)
        self._revocation_callbacks.setdefault(key, set()).add(callback)

        def stop() -> None:
            group = self._revocation_callbacks.get(key)
            if group is not None:
                group.discard(callback)
                if not group:
                    del self._revocation_callbacks[key]

        return stop

    async def start_session(self, client: str | None = None) -> str:
        """A new guest session id; each client address may start a bounded number a minute."""
        key = keys.session_starts(client or UNKNOWN_CLIENT)
        limited = await self._scripts.ratelimit_take([(key, self._limits.session_starts_per_client_per_minute)], 60)
        if limited is not None:
            raise RateLimited(f"too many new sessions from your address; try again in {limited[1]} s")
        return self._session_ids.issue()

    def session_valid(self, sid: str) -> bool:
        """Whether the server issued this id and it has not expired: no Redis or PostgreSQL asked."""
        return self._session_ids.valid(sid)
