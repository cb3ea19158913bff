"""What every resolver can reach: the process-wide stores and the caller's identity."""

from __future__ import annotations

from typing import Any, Protocol

from strawberry.dataloader import DataLoader

from db.accounts import Accounts, Viewer
from db.backends import Backends
from db.carts import CartStore
from db.catalog import Catalog, ProductRecord
from db.drop_line import DropLine
from db.drops import DropRecord, Drops
from db.errors import Forbidden, NotAuthenticated
from db.events import EventHub
from db.orders import Orders
from db.state_redis import StateRedis
from db.stock import StockCounters
from jobs.enqueue import JobEnqueuer


class Services(Protocol):
    """The process-wide stores resolvers work with; server.state.AppState builds and closes them."""

    @property
    def backends(self) -> Backends: ...
    @property
    def redis(self) -> StateRedis: ...
    @property
    def stock(self) -> StockCounters: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def accounts(self) -> Accounts: ...
    @property
    def carts(self) -> CartStore: ...
    @property
    def orders(self) -> Orders: ...
    @property
    def enqueuer(self) -> JobEnqueuer: ...
    @property
    def events(self) -> EventHub: ...
    @property
    def drops(self) -> Drops: ...
    @property
    def drop_line(self) -> DropLine: ...
    @property
    def dev_mode(self) -> bool: ...


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name) if headers is not None else None
    return value or None


class RequestContext:
    """One per GraphQL operation (or per WebSocket connection for subscriptions)."""

    def __init__(
        self,
        state: Services,
        *,
        headers: Any = None,
        cookies: dict[str, str] | None = None,
        response: Any = None,
        connection_params: dict[str, Any] | None = None,
        websocket: bool = False,
        client: str | None = None,
    ) -> None:
        self.state = state
        self.websocket = websocket
        # The caller's address: the socket peer, or what a trusted proxy said (TRUSTED_PROXIES).
        self.client = client
        self.response = response
        self._headers = headers
        self._cookies = cookies or {}
        self._connection_params = connection_params or {}
        self._viewer_loaded = False
        self._viewer: Viewer | None = None
        self._sid_checked = False
        self._sid: str | None = None
        self._products: DataLoader[int, ProductRecord | None] | None = None
        self._available: DataLoader[int, int | None] | None = None
        self._product_drops: DataLoader[int, DropRecord | None] | None = None

    # Loaders are made on first use: most buy requests never read a product.
    @property
    def products(self) -> DataLoader[int, ProductRecord | None]:
        if self._products is None:
            self._products = DataLoader(load_fn=self.state.catalog.get_many)
        return self._products

    @property
    def available(self) -> DataLoader[int, int | None]:
        if self._available is None:
            self._available = DataLoader(load_fn=self.state.stock.available)
        return self._available

    @property
    def product_drops(self) -> DataLoader[int, DropRecord | None]:
        if self._product_drops is None:
            self._product_drops = DataLoader(load_fn=self.state.drops.live_for_products)
        return self._product_drops

    @property
    def connection_params(self) -> dict[str, Any]:
        return self._connection_params

    @connection_params.setter
    def connection_params(self, value: dict[str, Any]) -> None:
        # Set by the WebSocket protocol on connection_init; identity comes from it from then on.
        self._connection_params = value if isinstance(value, dict) else {}
        self._viewer_loaded = False
        self._sid_checked = False

    @property
    def bearer_token(self) -> str | None:
        raw = (_header(self._headers, "authorization") or self._connection_params.get("Authorization")
               or self._connection_params.get("authorization"))
        if not raw or not isinstance(raw, str):
            return None
        scheme, _, token = raw.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @property
    def claimed_session_id(self) -> str | None:
        sid = _header(self._headers, "x-session-id") or self._cookies.get("sid")
        if not sid:
            sid = self._connection_params.get("X-Session-Id")
        return sid if isinstance(sid, str) and 0 < len(sid) <= 128 else None

    async def viewer(self) -> Viewer | None:
        if not self._viewer_loaded:
            token = self.bearer_token
            self._viewer = await self.state.accounts.resolve_token(token) if token else None
            self._viewer_loaded = True
        return self._viewer

    async def session_id(self) -> str | None:
        """The guest session id, only if the server issued it and it is still alive."""
        if not self._sid_checked:
            sid = self.claimed_session_id
            self._sid = sid if sid and self.state.accounts.session_valid(sid) else None
            self._sid_checked = True
        return self._sid

    async def require_customer(self) -> Viewer:
        viewer = await self.viewer()
        if viewer is None:
            raise NotAuthenticated("sign in first" if not self.bearer_token else "token expired or revoked")
        return viewer

    async def require_staff(self) -> Viewer:
        viewer = await self.require_customer()
        if not viewer.is_staff:
            raise Forbidden("staff only")
        return viewer
