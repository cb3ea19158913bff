"""A stand-in payment provider for development and the demo: `rushcart pay` and `POST /dev/pay`.

It sends exactly what a real provider would: a signed `payment.succeeded` or `payment.failed`
event for an order's amount, through the same webhook code path.
"""

from __future__ import annotations

import json
import secrets
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.order_records import OrderRecord
from server.request_body import RequestBodyError, parse_json_object, read_body
from server.state import AppState
from server.webhooks import receive, sign

# `{"orderId": ..., "outcome": ...}` is a few dozen bytes.
MAX_BODY = 4096


def event_body(order: OrderRecord, succeeded: bool, amount_cents: int | None = None) -> bytes:
    payload = {
        "id": "evt_" + secrets.token_hex(12),
        "type": "payment.succeeded" if succeeded else "payment.failed",
        "created": int(time.time()),
        "data": {
            "order_id": order.id,
            "amount_cents": order.total_cents if amount_cents is None else amount_cents,
            "currency": order.currency,
        },
    }
    return json.dumps(payload).encode()


async def dev_pay(request: Request) -> Response:
    """Development only: pay (or fail) an order as the provider would. Not routed in production."""
    state: AppState = request.app.state.rushcart
    try:
        body = parse_json_object(await read_body(request.receive, MAX_BODY))
        order_id, outcome = str(body["orderId"]), str(body.get("outcome", "succeeded"))
    except (RequestBodyError, KeyError):
        return JSONResponse({"error": 'expected JSON {"orderId": ..., "outcome": "succeeded"|"failed"}'},
                            status_code=400)
    if outcome not in ("succeeded", "failed"):
        return JSONResponse({"error": "outcome must be succeeded or failed"}, status_code=400)
    order = await state.orders.get(order_id, None)
    if order is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    event = event_body(order, outcome == "succeeded")
    secret: str = request.app.state.settings.payment_webhook_secret
    status, answer = await receive(state, secret, event, sign(secret, event))
    return JSONResponse(answer, status_code=status)
