"""The ceiling: the same reservation as `placeOrder`, with nothing around it.

`POST /reserve` with JSON `{"customerId", "productId", "quantity", "idempotencyKey"}` runs
db.orders.Orders.reserve (the one Lua script) and enqueues persistence exactly as the
placeOrder resolver does, on the server's own process state. No GraphQL, no token lookup,
no product loading for the answer: what is left is the floor cost of a purchase in Python,
so rushcart / ceiling says how much the layers above the script cost.

Served by uvicorn: `python -m uvicorn bench.ceiling_app:create_app --factory`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.health import readyz
from db.errors import RushcartError
from server.settings import Settings
from server.state import close_state, freeze_startup_heap, open_state, warm_state


async def reserve(request: Request) -> Response:
    state = request.app.state.rushcart
    try:
        body = await request.json()
        customer_id, product_id = int(body["customerId"]), int(body["productId"])
        quantity, key = int(body["quantity"]), str(body["idempotencyKey"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"errors": [{"code": "INVALID_INPUT", "message": "bad body"}]}, status_code=400)
    try:
        reservation = await state.orders.reserve(customer_id, [(product_id, quantity)], key)
    except RushcartError as exc:
        return JSONResponse({"errors": [{"code": exc.code, "message": exc.message}]})
    if reservation.enqueue_persistence:
        await state.enqueuer.persist_orders(reservation.bucket)
    order = reservation.order
    return JSONResponse({"order": {"id": order.id, "status": order.status, "totalCents": order.total_cents}})


def create_app() -> Starlette:
    settings = Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = open_state(settings)
        app.state.rushcart = state
        await warm_state(state)
        freeze_startup_heap()  # as the API does: the ceiling gets every start-up advantage
        try:
            yield
        finally:
            await close_state(state)

    async def ready(request: Request) -> Response:
        state = request.app.state.rushcart

        async def postgresql() -> None:
            async with state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        return await readyz({"postgresql": postgresql, "redis": state.redis.ping})

    return Starlette(
        routes=[Route("/reserve", reserve, methods=["POST"]), Route("/readyz", ready)],
        lifespan=lifespan,
    )
