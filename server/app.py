"""The Starlette application: GraphQL (HTTP and WebSocket), health, and the demo storefront."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from schema import build_schema
from schema.persisted import PersistedOperations
from server.graphiql import assets_mount
from server.graphql_view import RushcartGraphQL
from server.metrics import metrics, publish_subscriber_count, registry_for
from server.payment_provider import dev_pay
from server.settings import PROJECT_ROOT, Settings
from server.state import AppState, close_state, freeze_crowds, freeze_startup_heap, open_state, warm_state
from server.webhooks import payment_webhook

log = logging.getLogger("rushcart.app")
FRONTEND = PROJECT_ROOT / "frontend-demo"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: AppState = request.app.state.rushcart
    problems: dict[str, str] = {}
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        problems["postgresql"] = type(exc).__name__
    try:
        await state.redis.ping()
    except Exception as exc:
        problems["redis"] = type(exc).__name__
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise SystemExit("DATABASE_URL and REDIS_URL must be set (or use `rushcart dev`)")
    limits = settings.graphql_limits()
    schema = build_schema(limits)
    graphql = RushcartGraphQL(
        schema,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        keep_alive=True,
        keep_alive_interval=15,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        # A storefront on another origin needs its subscriptions as much as its queries.
        allowed_origins=settings.cors_origins,
    )
    graphql.persisted = PersistedOperations.load(schema, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = open_state(settings)
        app.state.rushcart = state
        app.state.settings = settings
        await warm_state(state)
        freeze_startup_heap()
        app.state.metrics_registry = registry_for(settings.redis_url, settings.effective_queue_redis_url,
                                                  cluster=settings.redis_cluster)
        gauge_task = asyncio.create_task(publish_subscriber_count(state.events))
        freezer_task = asyncio.create_task(freeze_crowds(state.events))
        try:
            yield
        finally:
            gauge_task.cancel()
            freezer_task.cancel()
            await close_state(state)

    routes: list[Any] = [
        # First, as the router tries routes in order and nearly every request is for this one. Every
        # method reaches the view, so even a 405 is answered in JSON (with its Allow header).
        Route("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/webhooks/payments", payment_webhook, methods=["POST"]),
        WebSocketRoute("/graphql", graphql),
    ]
    if settings.graphiql:
        routes.append(assets_mount())
    if settings.dev:
        routes.append(Route("/dev/pay", dev_pay, methods=["POST"]))
    if Path(FRONTEND, "index.html").exists():
        routes.append(Mount("/", StaticFiles(directory=FRONTEND, html=True), name="demo"))
    middleware = [*_cors(settings)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def _cors(settings: Settings) -> list[Middleware]:
    """CORS for the origins in CORS_ORIGINS; none by default (same-origin pages need none)."""
    if not settings.cors_origins:
        return []
    any_origin = "*" in settings.cors_origins
    return [Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Session-Id"],
        # The guest session cookie goes only to origins named one by one, never to any origin.
        allow_credentials=not any_origin,
        max_age=600,
    )]
