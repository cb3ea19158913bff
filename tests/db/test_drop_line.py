"""What a shopper is told, worked out from a drop's state message and their own place (db.drop_line.line_view)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from db.drop_line import DropLine, DropState, Place, line_view, stop_ticker
from db.drops import DropRecord
from db.enums import DropLineStatus

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
DROP = DropRecord(id=7, name="d", starts_at=START, admit_per_second=2.0, max_active=None, pass_ttl_seconds=60,
                  created_at=START, ended_at=None, product_ids=(1,), per_buyer=1)


def state(**changes: object) -> DropState:
    fields = {"at_ms": START_MS + 10_000, "started": True, "ended": False, "admitted": 10, "outstanding": 3,
              "line_length": 100, "units_left": 50, "used": 7, "expired": 0}
    return DropState(**{**fields, **changes})  # type: ignore[arg-type]


def place(rank: int | None = 19, expires: int | None = None, spent: str = "", fixed: bool = True) -> Place:
    return Place(rank, fixed, expires, spent)


def test_a_waiting_shopper_gets_position_ahead_and_a_wait_from_the_rate() -> None:
    """Rank 19 with 10 admitted: 9 ahead, position 10, about 5 s at 2 a second."""
    view = line_view(DROP, state(), place())
    assert (DropLineStatus.WAITING, 10, 9, 5) == (view.status, view.position, view.ahead,
                                                   view.estimated_wait_seconds)


def test_before_the_start_there_is_no_position_and_the_wait_is_until_the_start() -> None:
    """Early joiners are shuffled at the start, so their rank means nothing yet."""
    view = line_view(DROP, state(started=False, at_ms=START_MS - 30_000, admitted=0), place(fixed=False))
    assert (DropLineStatus.WAITING, None, 30) == (view.status, view.position, view.estimated_wait_seconds)


@pytest.mark.parametrize(
    ("units", "outstanding", "expected"),
    [(0, 0, DropLineStatus.SOLD_OUT), (12, 3, DropLineStatus.LIKELY_SOLD_OUT), (13, 3, DropLineStatus.WAITING)],
)
def test_a_place_the_units_cannot_reach_is_told_so(units: int, outstanding: int, expected: DropLineStatus) -> None:
    """3 passes out and 9 shoppers ahead, each buying one unit: 12 units do not reach the place, 13 do."""
    assert expected == line_view(DROP, state(units_left=units, outstanding=outstanding), place()).status


def test_a_pass_is_admitted_until_its_expiry_then_expired_and_used_is_purchased() -> None:
    now = START_MS + 10_000
    assert DropLineStatus.ADMITTED == line_view(DROP, state(), place(rank=3, expires=now + 1)).status
    assert DropLineStatus.PASS_EXPIRED == line_view(DROP, state(), place(rank=3, expires=now)).status
    assert DropLineStatus.PASS_EXPIRED == line_view(DROP, state(), place(rank=3, spent="EXPIRED")).status
    assert DropLineStatus.PURCHASED == line_view(DROP, state(), place(rank=3, spent="USED:x")).status


def test_an_ended_drop_and_an_absent_shopper() -> None:
    assert DropLineStatus.ENDED == line_view(DROP, state(ended=True), place()).status
    assert DropLineStatus.NOT_IN_LINE == line_view(DROP, state(), place(rank=None)).status


async def test_the_ticker_stops_when_a_driver_turns_its_cancellation_into_an_error() -> None:
    """A tick cancelled inside a query that answers the cancellation with an error of its own (as
    asyncpg does mid-query) still ends the ticker, so a shutdown does not wait forever."""
    ticking = asyncio.Event()

    class StuckLine(DropLine):
        def __init__(self) -> None:  # no stores: only the ticker's loop is under test
            pass

        async def tick(self) -> None:
            ticking.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise RuntimeError("cannot perform operation: another operation is in progress") from None

    task = asyncio.create_task(StuckLine().run_ticker(interval=0.01))
    await asyncio.wait_for(ticking.wait(), 5)
    await asyncio.wait_for(stop_ticker(task), 5)
    assert task.cancelled()
