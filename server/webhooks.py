"""`POST /webhooks/payments`: verify, store, queue for the batch that applies it. The answers are those of API.md.

    413  body over 64 KiB
    401  signature missing or wrong, or its time more than 300 s away from now
    400  body not JSON (server.request_body says what else: not an object, not UTF-8, too deep,
         text PostgreSQL cannot store), or fields missing, of the wrong type or out of range
    200  an event id already received (nothing happens again)
    202  stored and queued for applying (also for an order not persisted yet)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.payments import EVENT_TYPES, PENDING_FLAG_MS, PaymentEvent, store_event
from server.metrics import WEBHOOKS
from server.request_body import RequestBodyError, parse_json_object, read_body
from server.state import AppState

log = logging.getLogger("rushcart.webhooks")

MAX_BODY = 64 * 1024
TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Payment-Signature"
CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# What the columns hold: amount_cents is a bigint, created a timestamp (Python's datetime ends in 9999).
MAX_AMOUNT_CENTS = 2**63 - 1
MAX_CREATED = 253402300799


class WebhookError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Payment-Signature` header value for `body` (what a provider, or `rushcart pay`, sends)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, now: float | None = None) -> None:
    if not header:
        raise WebhookError(401, "missing Payment-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        raise WebhookError(401, "malformed Payment-Signature header") from None
    if abs((time.time() if now is None else now) - t) > TOLERANCE_SECONDS:
        raise WebhookError(401, "signature timestamp is outside the 300 s tolerance")
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    # compare_digest takes the same time wherever the strings differ; any v1 may match (key rotation).
    if not any(candidate.isascii() and hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise WebhookError(401, "signature does not match")


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse(body: bytes) -> PaymentEvent:
    try:
        # The event is stored whole (JSONB), so text PostgreSQL cannot hold is refused here too.
        payload = parse_json_object(body, storable_text=True)
    except RequestBodyError as exc:
        raise WebhookError(exc.status, exc.message) from None
    data = payload.get("data")
    problems = []
    if not isinstance(payload.get("id"), str) or not 0 < len(payload["id"]) <= 255:
        problems.append("id must be a string of 1-255 characters")
    if payload.get("type") not in EVENT_TYPES:
        problems.append(f"type must be one of {', '.join(EVENT_TYPES)}")
    if not _integer(payload.get("created"), 0, MAX_CREATED):
        problems.append("created must be an integer (unix seconds, before the year 10000)")
    if not isinstance(data, dict):
        problems.append("data must be an object")
    else:
        if not isinstance(data.get("order_id"), str) or not 0 < len(data["order_id"]) <= 100:
            problems.append("data.order_id must be a string")
        if not _integer(data.get("amount_cents"), 0, MAX_AMOUNT_CENTS):
            problems.append(f"data.amount_cents must be an integer from 0 to {MAX_AMOUNT_CENTS}")
        if not isinstance(data.get("currency"), str) or not CURRENCY.match(data["currency"]):
            problems.append("data.currency must be a three-letter code")
    if problems:
        raise WebhookError(400, "; ".join(problems))
    assert isinstance(data, dict)
    return PaymentEvent(
        id=payload["id"],
        type=payload["type"],
        order_id=data["order_id"],
        amount_cents=data["amount_cents"],
        currency=data["currency"].upper(),
        created=payload["created"],
        payload=payload,
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and len(declared) < 20 and int(declared) > MAX_BODY:
        raise WebhookError(413, "body over 64 KiB")
    try:
        return await read_body(request.receive, MAX_BODY)
    except RequestBodyError:
        raise WebhookError(413, "body over 64 KiB") from None


async def receive(state: AppState, secret: str, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    """Verify, store and queue one event; returns the HTTP status and JSON answer.

    The event joins payments:toapply and a drain job is enqueued only when none is pending, so a
    burst of webhooks is applied by a few jobs in batches (jobs.payments.apply_queued_payments)."""
    verify(secret, signature, body)
    event = parse(body)
    if not await store_event(state.backends.sessions, event):
        return 200, {"status": "duplicate", "id": event.id}
    try:
        if await state.backends.scripts.payment_queue(
            event.id, now_ms=int(time.time() * 1000), pending_flag_ms=PENDING_FLAG_MS
        ):
            await state.enqueuer.apply_payments()
    except Exception:
        # Stored is what matters: the payment sweeper applies events that never reached a batch.
        log.exception("payment event %s stored but not queued; the sweeper will apply it", event.id)
    return 202, {"status": "accepted", "id": event.id}


async def payment_webhook(request: Request) -> Response:
    state: AppState = request.app.state.rushcart
    state.events.note_request()
    secret: str = request.app.state.settings.payment_webhook_secret
    try:
        body = await _read_body(request)
        status, answer = await receive(state, secret, body, request.headers.get(SIGNATURE_HEADER))
    except WebhookError as exc:
        WEBHOOKS.labels(f"rejected_{exc.status}").inc()
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    WEBHOOKS.labels(answer["status"]).inc()
    return JSONResponse(answer, status_code=status)
