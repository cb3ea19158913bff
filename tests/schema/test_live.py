"""schema.live gives every subscriber what graphql-core and Strawberry give it without sharing.

Two copies of one small schema: the reference yields plain event objects and runs on
Strawberry's own executor; the live one yields schema.live.Shared and runs on LiveExecutor.
Several subscribers per document, with variables, aliases, fragments, a resolver that fails
(masked), a domain refusal (kept) and a null in a non-null field, must get the same data (with
its key order), the same formatted errors, and the same bytes on the wire; and the live copy runs
each event's selection set once per distinct operation and variables, not once per subscriber.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

import graphql.execution.executor
import pytest
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache

from db.errors import OrderNotFound, RushcartError
from schema.errors import refusals_as_errors
from schema.live import LiveExecutor, Shared, encode_message

SUBSCRIBERS = 6
EVENTS = 5


def _should_mask(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, (GraphQLError, RushcartError))


CALLS: Counter[str] = Counter()


@strawberry.type
class Event:
    n: int

    @strawberry.field
    def double(self) -> int:
        CALLS["double"] += 1
        return self.n * 2

    @strawberry.field
    def boom(self) -> int | None:
        if self.n % 2:
            raise ValueError("internal detail that must not leak")
        return self.n

    @strawberry.field
    def refused(self) -> int | None:
        if self.n == 3:
            raise OrderNotFound("no such order of yours")
        return None

    @strawberry.field
    def strict(self) -> int:
        return None if self.n == 4 else self.n  # type: ignore[return-value]

    @strawberry.field
    def label(self, prefix: str = "#") -> str:
        return f"{prefix}{self.n}"


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self, info: strawberry.Info, upto: int, fail_at: int = -1) -> AsyncGenerator[Event, None]:
        async with refusals_as_errors():
            for n in range(upto):
                if n == fail_at:
                    raise OrderNotFound("this order went away")
                event = Event(n=n)
                yield Shared(n, event) if info.context["shared"] else event  # type: ignore[misc]

    @strawberry.subscription
    async def mine(self, info: strawberry.Info, upto: int) -> AsyncGenerator[Event, None]:
        """Events whose results are each subscriber's own (as a shopper's place in a line is)."""
        CALLS["mine"] += 1
        me = CALLS["mine"]
        for n in range(upto):
            event = Event(n=n)
            yield Shared((me, n), event) if info.context["shared"] else event  # type: ignore[misc]


def make_schema(shared: bool) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        extensions=[lambda: ParserCache(maxsize=64), lambda: MaskErrors(should_mask_error=_should_mask)],
        execution_context_class=LiveExecutor if shared else None,
    )


DOCUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("subscription($u: Int!) { events(upto: $u) { n double } }", {"u": EVENTS}),
    ("subscription($u: Int!) { events(upto: $u) { n double } }", {"u": EVENTS - 1}),
    ("subscription S($u: Int!, $p: String!) { events(upto: $u) { ...F twice: double label(prefix: $p) } } "
     "fragment F on Event { n boom }", {"u": EVENTS, "p": "no."}),
    ("subscription { events(upto: 5) { n refused boom } }", {}),
    ("subscription { events(upto: 5) { strict label } }", {}),
    ("subscription { events(upto: 5, failAt: 2) { n } }", {}),
]


def _message(result: Any) -> dict[str, Any]:
    # What Strawberry's graphql-transport-ws handler sends for a result (Operation.send_next).
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return {"id": "op-1", "type": "next", "payload": payload}


def _wire(message: dict[str, Any]) -> str:
    return encode_message(message) or json.dumps(message, separators=(",", ":"))


async def _stream(schema: strawberry.Schema, text: str, variables: dict[str, Any]) -> list[str]:
    shared = schema.execution_context_class is LiveExecutor
    source = await schema.subscribe(text, variable_values=variables, context_value={"shared": shared})
    return [_wire(_message(result)) async for result in source]  # type: ignore[union-attr]


async def _all(schema: strawberry.Schema) -> list[list[str]]:
    runs = [(text, variables) for text, variables in DOCUMENTS for _ in range(SUBSCRIBERS)]
    return list(await asyncio.gather(*[_stream(schema, text, variables) for text, variables in runs]))


async def test_live_results_are_the_reference_answers_byte_for_byte() -> None:
    """Every subscriber gets the same messages, data, errors (masked and coded) and bytes as without sharing."""
    reference, live = await _all(make_schema(False)), await _all(make_schema(True))
    assert reference == live
    # The documents do exercise what they claim to.
    text = "\n".join(line for stream in live for line in stream)
    for expected in ("Unexpected error.", "no such order of yours", "ORDER_NOT_FOUND", '"path":["events","strict"]',
                     '"twice":', "no.3", "this order went away"):
        assert expected in text


async def test_each_event_runs_once_per_operation_and_variables() -> None:
    """Six subscribers of one operation cost one execution of each event's selection set."""
    text, variables = DOCUMENTS[0]
    CALLS.clear()
    live = make_schema(True)
    streams = await asyncio.gather(*[_stream(live, text, variables) for _ in range(SUBSCRIBERS)])
    assert [streams[0]] * SUBSCRIBERS == list(streams)
    assert EVENTS == CALLS["double"]
    CALLS.clear()
    reference = make_schema(False)
    await asyncio.gather(*[_stream(reference, text, variables) for _ in range(SUBSCRIBERS)])
    assert EVENTS * SUBSCRIBERS == CALLS["double"]


async def test_each_subscribers_own_events_reuse_the_fields_collected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events that differ per subscriber are executed for each, with the same answers, but the fields
    they select are collected once for the operation, not once per event and subscriber."""
    collected: Counter[str] = Counter()
    collect = graphql.execution.executor.collect_subfields

    def counting(*args: Any) -> Any:
        collected["subfields"] += 1
        return collect(*args)

    monkeypatch.setattr(graphql.execution.executor, "collect_subfields", counting)
    text = "subscription($u: Int!) { mine(upto: $u) { n double } }"
    runs = []
    for schema in (make_schema(False), make_schema(True)):
        CALLS.clear()
        collected.clear()
        streams = await asyncio.gather(*[_stream(schema, text, {"u": EVENTS}) for _ in range(SUBSCRIBERS)])
        runs.append((streams, CALLS["double"], collected["subfields"]))
    (reference, reference_calls, reference_collected), (live, live_calls, live_collected) = runs
    assert (reference, EVENTS * SUBSCRIBERS, EVENTS * SUBSCRIBERS) == (live, live_calls, reference_collected)
    assert (reference_calls, 1) == (EVENTS * SUBSCRIBERS, live_collected)


@pytest.mark.parametrize("message", [
    {"type": "next", "id": "a", "payload": {"data": {"x": 1}}},
    {"type": "connection_ack"},
    {"data": {"x": 1}},
])
def test_messages_without_shared_data_are_left_to_the_plain_encoder(message: dict[str, Any]) -> None:
    """Only a payload holding shared data and nothing else is spliced; everything else is encoded as usual."""
    assert encode_message(message) is None
