"""Payment events: stored first, applied once, whatever order they arrive in.

Every webhook event is inserted into `payment_events` (unique on the provider's id) before
anything else happens. Applying one locks its row, so two appliers of the same event take
turns and the second finds it done. The order's transition is the same single-winner
conditional UPDATE as expiry (db.order_transitions): a success racing the expiry sweeper ends
PAID with no stock released, or CANCELLED with `needs_refund` and stock released once.

Events arrive in bursts, so they are applied in batches (apply_stored_events): a transaction per
group of events, taken in order of receipt, each event row locked as when one is applied alone.
The burst's common case, a success for a pending order, is applied for the whole group in a few
statements; the rest one event at a time.

An event for an order that is not in PostgreSQL yet is applied by whoever persists the order,
in the transaction that inserts it; until then it waits in state `waiting`. Event states:
    received -> applied (outcome: paid | already_paid | refund_needed | cancelled | ignored)
             -> review  (amount or currency differ from the order's; the order stays PENDING)
             -> waiting (no such order yet; applied when it is persisted, else kept for review)
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.backends import Backends
from db.enums import CancelReason, OrderStatus
from db.order_transitions import (
    STORED_NOW,
    OrderRef,
    Released,
    cancel_in_session,
    epoch_ms,
    owe_paid,
    publish_changes,
)

log = logging.getLogger("rushcart.payments")

EVENT_TYPES = ("payment.succeeded", "payment.failed")
# Events applied per transaction: large enough to pay one commit for many events, small enough that
# a group retried one by one (after a deadlock with another writer) costs little.
APPLY_GROUP_SIZE = 100
# Changes of one group published at once after its commit (Redis round trips in flight).
PUBLISH_CONCURRENCY = 16
# While set, a payment drain job is queued: a burst of webhooks enqueues one job, not one each.
PENDING_FLAG_MS = 5000


@dataclass(frozen=True)
class PaymentEvent:
    id: str
    type: str
    order_id: str
    amount_cents: int
    currency: str
    created: int
    payload: dict[str, Any]


async def store_event(sessions: async_sessionmaker[AsyncSession], event: PaymentEvent) -> bool:
    """Insert the event; False when an event with this id was already received."""
    async with sessions() as session, session.begin():
        row = (
            await session.execute(
                text(
                    "INSERT INTO payment_events (id, type, order_id, amount_cents, currency, provider_created_at, "
                    "payload) VALUES (:id, :type, :order_id, :amount, :currency, :created, CAST(:payload AS jsonb)) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id"
                ),
                {
                    "id": event.id,
                    "type": event.type,
                    "order_id": event.order_id,
                    "amount": event.amount_cents,
                    "currency": event.currency,
                    "created": datetime.fromtimestamp(event.created, UTC),
                    "payload": json.dumps(event.payload),
                },
            )
        ).one_or_none()
    return row is not None


@dataclass(frozen=True)
class Applied:
    outcome: str
    paid: OrderRef | None = None  # published after commit
    paid_at_ms: int | None = None  # paid_at as stored
    released: list[Released] = field(default_factory=list)  # mirrored into Redis after commit


async def _apply_in_session(backends: Backends, session: AsyncSession, event: Any) -> Applied | None:
    """Apply one locked event row. None when the order is not in PostgreSQL."""
    try:
        order_uuid = uuid.UUID(event.order_id)
    except ValueError:
        await _finish(session, event.id, "orphaned", "not_an_order_id")
        return Applied("not_an_order_id")
    order = (
        await session.execute(
            text("SELECT customer_id, id, status, total_cents, currency FROM orders WHERE id = :id FOR UPDATE"),
            {"id": order_uuid},
        )
    ).one_or_none()
    if order is None:
        return None
    ref = OrderRef(order.customer_id, str(order.id))
    if event.type == "payment.succeeded":
        if event.amount_cents != order.total_cents or event.currency.upper() != order.currency.strip():
            await _finish(session, event.id, "review", "amount_mismatch")
            return Applied("amount_mismatch")
        if order.status == OrderStatus.PENDING:
            paid_at = (
                await session.execute(
                    text(f"UPDATE orders SET status = 'PAID', paid_at = {STORED_NOW} WHERE customer_id = :cid "
                         "AND id = :id AND status = 'PENDING' RETURNING paid_at"),
                    {"cid": order.customer_id, "id": order.id},
                )
            ).scalar_one()
            await owe_paid(session, [(ref, epoch_ms(paid_at))])
            await _finish(session, event.id, "applied", "paid")
            return Applied("paid", paid=ref, paid_at_ms=epoch_ms(paid_at))
        if order.status == OrderStatus.CANCELLED:
            await session.execute(
                text("UPDATE orders SET needs_refund = true WHERE customer_id = :cid AND id = :id"),
                {"cid": order.customer_id, "id": order.id},
            )
            await _finish(session, event.id, "applied", "refund_needed")
            return Applied("refund_needed")
        await _finish(session, event.id, "applied", "already_paid")
        return Applied("already_paid")
    won = (
        await cancel_in_session(backends, session, [ref], CancelReason.PAYMENT_FAILED)
        if order.status == OrderStatus.PENDING
        else []
    )
    outcome = "cancelled" if won else "ignored"
    await _finish(session, event.id, "applied", outcome)
    return Applied(outcome, released=won)


async def _finish(session: AsyncSession, event_id: str, state: str, outcome: str) -> None:
    await session.execute(
        text("UPDATE payment_events SET state = :state, outcome = :outcome, applied_at = now() WHERE id = :id"),
        {"state": state, "outcome": outcome, "id": event_id},
    )


async def _lock_event(session: AsyncSession, event_id: str) -> Any:
    return (
        await session.execute(
            text(
                "SELECT id, type, order_id, amount_cents, currency FROM payment_events "
                "WHERE id = :id AND state IN ('received', 'waiting') FOR UPDATE"
            ),
            {"id": event_id},
        )
    ).one_or_none()


async def event_order_id(sessions: async_sessionmaker[AsyncSession], event_id: str) -> str | None:
    """The order a stored event is for (as the provider sent it); None for an unknown event."""
    async with sessions() as session:
        return (
            await session.execute(text("SELECT order_id FROM payment_events WHERE id = :id"), {"id": event_id})
        ).scalar_one_or_none()


async def apply_stored_event(backends: Backends, event_id: str) -> str:
    """Apply a stored event to its persisted order; returns its outcome ('waiting' when the order is
    not in PostgreSQL, 'already_applied' when someone else applied it first)."""
    async with backends.sessions() as session:
        async with session.begin():
            locked = await _lock_event(session, event_id)
            if locked is None:
                return "already_applied"
            applied = await _apply_in_session(backends, session, locked)
            if applied is None:
                await session.execute(
                    text("UPDATE payment_events SET state = 'waiting' WHERE id = :id"), {"id": event_id}
                )
                return "waiting"
    await _publish(backends, applied)
    return applied.outcome


async def _publish(backends: Backends, applied: Applied) -> None:
    """After the commit: the order's PAID, or the units a failed payment released."""
    await _publish_all(backends, [applied])


async def event_orders(sessions: async_sessionmaker[AsyncSession], event_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(event id, order id as sent) of the stored events among `event_ids` still to apply, in order
    of receipt."""
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, order_id FROM payment_events WHERE id = ANY(:ids) AND state IN ('received', 'waiting') "
                "ORDER BY received_at, id"
            ),
            {"ids": list(event_ids)},
        )
        return [(row.id, row.order_id) for row in rows]


async def apply_stored_events(backends: Backends, event_ids: Sequence[str]) -> dict[str, str]:
    """Apply stored events (given in order of receipt) in transactions of APPLY_GROUP_SIZE; returns
    each one's outcome as apply_stored_event names it. Events already applied are skipped, so a
    second call changes nothing."""
    outcomes: dict[str, str] = {}
    for start in range(0, len(event_ids), APPLY_GROUP_SIZE):
        group = list(event_ids[start:start + APPLY_GROUP_SIZE])
        try:
            outcomes.update(await _apply_group(backends, group))
        except DBAPIError:
            # Several orders locked in one transaction may meet another writer locking them in
            # another order (the expiry sweeper, a persistence batch); the group rolled back whole,
            # so its events are applied one transaction each, which cannot deadlock that way.
            log.warning("a group of %d payment events failed; applying them one by one", len(group), exc_info=True)
            for event_id in group:
                outcomes[event_id] = await apply_stored_event(backends, event_id)
    return outcomes


async def _apply_group(backends: Backends, event_ids: list[str]) -> dict[str, str]:
    outcomes = dict.fromkeys(event_ids, "already_applied")
    done: list[Applied] = []
    async with backends.sessions() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    "SELECT id, type, order_id, amount_cents, currency FROM payment_events "
                    "WHERE id = ANY(:ids) AND state IN ('received', 'waiting') ORDER BY received_at, id FOR UPDATE"
                ),
                {"ids": event_ids},
            )
        ).all()
        paid = await _pay_together(session, rows)
        waiting = []
        for row in rows:
            applied = paid.get(row.id) or await _apply_in_session(backends, session, row)
            if applied is None:
                waiting.append(row.id)
                outcomes[row.id] = "waiting"
            else:
                done.append(applied)
                outcomes[row.id] = applied.outcome
        if waiting:
            await session.execute(
                text("UPDATE payment_events SET state = 'waiting' WHERE id = ANY(:ids)"), {"ids": waiting}
            )
    await _publish_all(backends, done, PUBLISH_CONCURRENCY)
    return outcomes


async def _pay_together(session: AsyncSession, rows: Sequence[Any]) -> dict[str, Applied]:
    """The common case of a burst, in a few statements for the whole group instead of three per event:
    a success for a PENDING order of that amount, the group's only event for that order. Returns the
    events it applied; every other event (a failure, a second event for an order, a mismatch, an order
    paid, cancelled or not persisted) is left to _apply_in_session, in order of receipt. The two sets
    touch different orders, so which goes first changes nothing."""
    per_order = Counter(row.order_id for row in rows)
    candidates: dict[str, Any] = {}
    for row in rows:
        if row.type == "payment.succeeded" and per_order[row.order_id] == 1:
            with contextlib.suppress(ValueError):
                candidates[str(uuid.UUID(row.order_id))] = row
    if not candidates:
        return {}
    # Locked in id order, all at once; the rows left to the slow path are then already ours.
    orders = (
        await session.execute(
            text("SELECT customer_id, id, status, total_cents, currency FROM orders WHERE id = ANY(:ids) "
                 "ORDER BY id FOR UPDATE"),
            {"ids": [uuid.UUID(oid) for oid in candidates]},
        )
    ).all()
    payable = [
        order for order in orders
        if order.status == OrderStatus.PENDING
        and candidates[str(order.id)].amount_cents == order.total_cents
        and candidates[str(order.id)].currency.upper() == order.currency.strip()
    ]
    if not payable:
        return {}
    changed = (
        await session.execute(
            text(f"UPDATE orders SET status = 'PAID', paid_at = {STORED_NOW} "
                 "FROM unnest(CAST(:cids AS bigint[]), CAST(:ids AS uuid[])) AS p(cid, oid) "
                 "WHERE orders.customer_id = p.cid AND orders.id = p.oid AND orders.status = 'PENDING' "
                 "RETURNING orders.customer_id, orders.id, orders.paid_at"),
            {"cids": [order.customer_id for order in payable], "ids": [order.id for order in payable]},
        )
    ).all()
    paid = {
        candidates[str(order.id)].id: Applied("paid", paid=OrderRef(order.customer_id, str(order.id)),
                                              paid_at_ms=epoch_ms(order.paid_at))
        for order in changed
    }
    await owe_paid(session, [(applied.paid, applied.paid_at_ms) for applied in paid.values()
                             if applied.paid is not None and applied.paid_at_ms is not None])
    await session.execute(
        text("UPDATE payment_events SET state = 'applied', outcome = 'paid', applied_at = now() WHERE id = ANY(:ids)"),
        {"ids": list(paid)},
    )
    return paid


async def _publish_all(backends: Backends, done: Sequence[Applied], concurrency: int = 1) -> None:
    """After the commit: the orders made PAID and the units failed payments released. A group's
    changes go out side by side rather than one round trip after another: a group changes an order
    once at most (a success after a failure only flags the refund), so no two of them race."""
    await publish_changes(
        backends,
        paid=[(applied.paid, applied.paid_at_ms) for applied in done if applied.paid is not None],
        released=[item for applied in done for item in applied.released],
        concurrency=concurrency,
    )


async def apply_waiting_for_orders(
    backends: Backends, session: AsyncSession, order_ids: Sequence[str]
) -> tuple[list[tuple[OrderRef, int | None]], list[Released]]:
    """Inside the persistence transaction: apply events that arrived before these orders were
    persisted. Returns orders that became PAID (with paid_at in ms) and cancellations, for after
    the commit."""
    rows = (
        await session.execute(
            text(
                "SELECT id, type, order_id, amount_cents, currency FROM payment_events "
                "WHERE order_id = ANY(:ids) AND state IN ('received', 'waiting') ORDER BY received_at FOR UPDATE"
            ),
            {"ids": list(order_ids)},
        )
    ).all()
    paid: list[tuple[OrderRef, int | None]] = []
    released: list[Released] = []
    for row in rows:
        applied = await _apply_in_session(backends, session, row)
        if applied is not None:
            if applied.paid is not None:
                paid.append((applied.paid, applied.paid_at_ms))
            released += applied.released
    return paid, released


async def open_event_ids(sessions: async_sessionmaker[AsyncSession], older_than_seconds: int,
                         limit: int = 500) -> list[str]:
    """Events not applied yet (their job was lost, or their order was not there), oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id FROM payment_events WHERE state IN ('received', 'waiting') "
                "AND received_at < now() - make_interval(secs => :age) ORDER BY received_at LIMIT :limit"
            ),
            {"age": older_than_seconds, "limit": limit},
        )
        return [row.id for row in rows]
