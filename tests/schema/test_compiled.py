"""schema.compiled gives the answers graphql-core's own executor gives, and declines what it does not plan.

Every document runs against one small Strawberry schema: through `graphql.execute` with
Strawberry's executor class, and through `compile_operation(...).execute(...)`, once calling root
resolvers through Strawberry's wrapper and once through schema.direct_call. Data (with its
key order), the formatted errors (message, locations, path, extensions) and the side effects the
resolvers leave in the context must be the same. Plain objects only: no database, no Redis, no
live stack.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace
from typing import Annotated, Any, NewType

import pytest
import strawberry
from graphql import ExecutionResult, GraphQLError, execute, parse, validate
from graphql.pyutils import is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from schema.compiled import compile_operation
from schema.direct_call import direct_call
from schema.strawberry_internals import graphql_schema

# --- the schema --------------------------------------------------------------------------------


@dataclass
class Context:
    log: list[str] = field(default_factory=list)
    signal: asyncio.Event = field(default_factory=asyncio.Event)


Ctx = Info[Context, None]

Money = NewType("Money", int)


def _serialize_money(value: int) -> str | None:
    if value < 0:
        raise ValueError(f"negative money: {value}")
    if value == 0:
        return None  # a serializer that gives nothing: graphql-core reports it
    return f"{value / 100:.2f}"


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@strawberry.type
class Tag:
    name: str
    weight: int | None


@strawberry.type
class Dimensions:
    width: int
    height: int


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    label: str | None = strawberry.field(name="title")  # GraphQL name differs from the attribute
    color: Color
    price: Money
    discount: Money | None
    created_at: datetime
    note: str | None
    tags: list[Tag]
    maybe_tags: list[Tag | None] | None
    scores: list[int | None]
    ranks: list[int] | None
    matrix: list[list[int]]
    dimensions: Dimensions
    extra: Dimensions | None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def initials(self, upper: bool = False) -> str:
        return self.name[:1].upper() if upper else self.name[:1]


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Person(Named):
    age: int


@strawberry.type
class Checked:
    value: int

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return True


SearchResult = Annotated[Item | Checked, strawberry.union("SearchResult")]


@strawberry.input
class GreetInput:
    name: str
    color: Color
    greeting: str = "Hello"


@strawberry.input
class NoteInput:
    """Plain fields only: schema.direct_call converts it without Strawberry's routine."""

    text: str
    author: str | None
    tags: list[str] = strawberry.field(default_factory=list)
    priority: int | None = 3
    score: float | None = strawberry.UNSET
    pinned: bool = False


@strawberry.input
class ItemInput:
    name: str
    color: Color
    tags: list[str] = strawberry.field(default_factory=list)


FIXED_TIME = datetime(2024, 5, 17, 12, 30, tzinfo=UTC)


def _dims(width: int | None = 10, height: int | None = 20) -> SimpleNamespace:
    return SimpleNamespace(width=width, height=height)


def _item(id: Any, **overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "id": id, "name": f"Item {id}", "label": f"Label {id}", "color": Color.RED, "price": Money(1250),
        "discount": Money(100), "created_at": FIXED_TIME, "note": "fragile",
        "tags": [SimpleNamespace(name="new", weight=3), SimpleNamespace(name="sale", weight=None)],
        "maybe_tags": [SimpleNamespace(name="x", weight=1)], "scores": [1, 2, 3], "ranks": [4, 5],
        "matrix": [[1, 2], [3]], "dimensions": _dims(), "extra": _dims(1, 2),
    }
    values.update(overrides)
    return SimpleNamespace(**values)


class _GeneratorScores(SimpleNamespace):
    """Scores read through a property that makes a fresh generator on every read."""

    @property
    def scores(self) -> Any:
        return (n * n for n in range(3))


def _no_note() -> SimpleNamespace:
    value = _item("no-note")
    del value.note
    return value


ITEMS: dict[str, Any] = {
    "1": _item("1"),
    "2": _item("2", note=None, extra=None, label=None, discount=None, ranks=None, color=Color.GREEN,
               maybe_tags=[SimpleNamespace(name="a", weight=1), None], scores=[1, None, 3], matrix=[],
               tags=(SimpleNamespace(name="t", weight=0),)),
    "int-id": _item(7),
    "generator-scores": _GeneratorScores(**{k: v for k, v in vars(_item("generator-scores")).items()
                                            if k != "scores"}),
    "bad-dims": _item("bad-dims", dimensions=_dims(height=None)),
    "bad-extra": _item("bad-extra", extra=_dims(height=None)),
    "bad-tag": _item("bad-tag", tags=[SimpleNamespace(name="ok", weight=1), SimpleNamespace(name=None, weight=2)]),
    "bad-maybe-tag": _item("bad-maybe-tag", maybe_tags=[SimpleNamespace(name=None, weight=1),
                                                        SimpleNamespace(name="fine", weight=2), None]),
    "bad-score": _item("bad-score", scores=[1, "x", 2**31, None]),
    "bad-rank": _item("bad-rank", ranks=[1, None, 3]),
    "bad-matrix": _item("bad-matrix", matrix=[[1], None]),
    "bad-color": _item("bad-color", color="purple"),
    "bad-discount": _item("bad-discount", discount=Money(-5)),
    "zero-price": _item("zero-price", price=Money(0)),
    "bad-date": _item("bad-date", created_at="yesterday"),
    "string-tags": _item("string-tags", tags="abc"),
    "dict-scores": _item("dict-scores", scores={"a": 1}),
    "bytearray-scores": _item("bytearray-scores", scores=bytearray(b"\x01\x02")),
    "mapping-scores": _item("mapping-scores", scores=MappingProxyType({"a": 1})),
    "exc-note": _item("exc-note", note=ValueError("stored, not raised")),
    "no-note": _no_note(),
}


def _find(id: str) -> Any:
    """An item, None when unknown, an exception value for "boom"."""
    if id == "boom":
        return LookupError(f"item {id} blew up")
    return ITEMS.get(id)


def _lookup(id: str) -> Any:
    found = _find(id)
    if isinstance(found, Exception):
        raise found
    return found


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, id: strawberry.ID) -> Item | None:
        return _lookup(id)

    @strawberry.field
    async def required_item(self, id: strawberry.ID) -> Item:
        return _lookup(id)

    @strawberry.field
    async def items(self, ids: list[strawberry.ID]) -> list[Item | None]:
        return [_find(i) for i in ids]

    @strawberry.field
    async def strict_items(self, ids: list[strawberry.ID]) -> list[Item]:
        return [_find(i) for i in ids]

    @strawberry.field
    async def now(self) -> datetime:
        return FIXED_TIME

    @strawberry.field
    async def money(self, cents: int) -> Money | None:
        return Money(cents)

    @strawberry.field
    async def failing(self) -> str | None:
        raise RuntimeError("failing resolver")

    @strawberry.field
    async def failing_required(self) -> str:
        raise RuntimeError("failing required resolver")

    @strawberry.field
    async def null_required(self) -> str:
        return None  # type: ignore[return-value]

    @strawberry.field
    async def returns_error(self) -> str | None:
        return ValueError("returned, not raised")  # type: ignore[return-value]

    @strawberry.field
    async def forbidden(self) -> str | None:
        raise GraphQLError("forbidden", extensions={"code": "FORBIDDEN"})

    @strawberry.field
    def version(self) -> str:
        return "1.0"

    @strawberry.field
    def sync_null_required(self) -> str:
        return None  # type: ignore[return-value]

    @strawberry.field
    async def late_failure(self) -> str | None:
        await asyncio.sleep(0.02)
        raise RuntimeError("late failure")

    @strawberry.field
    async def wait_for_signal(self, info: Ctx) -> str:
        try:
            await asyncio.wait_for(info.context.signal.wait(), 0.3)
        except TimeoutError:
            return "timed out"
        return "signalled"

    @strawberry.field
    async def send_signal(self, info: Ctx) -> str:
        info.context.signal.set()
        return "sent"

    @strawberry.field
    async def greet(self, input: GreetInput) -> str:
        return f"{input.greeting}, {input.name} ({input.color.name})"

    @strawberry.field
    async def person(self) -> Person:
        return Person(name="Ann", age=30)

    @strawberry.field
    async def named(self) -> Named:
        return Person(name="Ann", age=30)

    @strawberry.field
    async def search(self) -> list[SearchResult]:
        return [ITEMS["1"]]

    @strawberry.field
    async def checked(self) -> Checked:
        return Checked(value=1)

    @strawberry.field
    async def maybe_label(self, label: strawberry.Maybe[str | None] = None) -> str:
        # Maybe tells an argument left out (None) from one given as null (Some(None)).
        return "left out" if label is None else f"given {label.value!r}"


@strawberry.type
class Mutation:
    @strawberry.field
    async def append(self, info: Ctx, entry: str, delay: float = 0) -> list[str]:
        if delay:
            await asyncio.sleep(delay)
        info.context.log.append(entry)
        return list(info.context.log)

    @strawberry.field
    async def append_required(self, info: Ctx, entry: str) -> str:
        info.context.log.append(entry)
        return entry or None  # type: ignore[return-value]

    @strawberry.field
    async def note(self, info: Ctx, input: NoteInput, extra: list[NoteInput] | None = None,
                   label: str | None = "none given") -> str:
        def seen(n: NoteInput) -> list[Any]:
            return [type(n).__name__, n.text, n.author, n.tags, n.priority,
                    "UNSET" if n.score is strawberry.UNSET else n.score, n.pinned]

        info.context.log.append(f"note {input.text}")
        return json.dumps([seen(input), None if extra is None else [seen(n) for n in extra], label])

    @strawberry.field
    async def create(self, info: Ctx, input: ItemInput) -> Item:
        info.context.log.append(f"create {input.name}")
        return _item("new", name=input.name, color=input.color,
                     tags=[SimpleNamespace(name=t, weight=None) for t in input.tags])  # type: ignore[return-value]


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        yield 1


SCHEMA = strawberry.Schema(
    query=Query, mutation=Mutation, subscription=Subscription,
    config=StrawberryConfig(scalar_map={Money: strawberry.scalar(name="Money", serialize=_serialize_money,
                                                                 parse_value=int)}),
)


# --- running both ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    document: str
    variables: dict[str, Any] | None = None
    errors: int = 0  # how many errors graphql-core reports: keeps each case about what it says
    data_null: bool = False


async def _reference(document: str, variables: dict[str, Any] | None, context: Context) -> ExecutionResult:
    result = execute(graphql_schema(SCHEMA), parse(document), context_value=context, variable_values=variables,
                     executor_class=SCHEMA.execution_context_class)
    if is_awaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result


def _direct(field: Any) -> Any:
    return direct_call(SCHEMA, field)


@pytest.fixture(params=["strawberry-wrapper", "direct-call"])
def direct(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "direct-call")


# A plan's first request builds graphql-core's executor, later ones reuse it: both must answer alike.
@pytest.fixture(params=["first-request", "later-request"])
def later(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "later-request")


async def _compiled(document: str, variables: dict[str, Any] | None, context: Context,
                    direct: bool = False, later: bool = False) -> ExecutionResult:
    compiled = compile_operation(graphql_schema(SCHEMA), parse(document), SCHEMA.execution_context_class,
                                 _direct if direct else None)
    assert compiled is not None, "expected the operation to compile"
    if later:
        await compiled.execute(Context(), variables)
    return await compiled.execute(context, variables)


def _answer(result: ExecutionResult, context: Context) -> dict[str, Any]:
    return {
        "data": result.data,
        # key order is part of the answer a client sees
        "json": json.dumps(result.data),
        "errors": None if result.errors is None else [e.formatted for e in result.errors],
        "log": context.log,
    }


def _valid(document: str) -> None:
    assert validate(graphql_schema(SCHEMA), parse(document)) == [], document


# --- cases -------------------------------------------------------------------------------------

ITEM_FIELDS = "id name title color price discount createdAt note"
LIST_FIELDS = "tags { name weight } maybeTags { name weight } scores ranks matrix"

CASES = [
    Case("scalars-enum-datetime-custom-scalar", f'{{ item(id: "1") {{ {ITEM_FIELDS} }} }}'),
    Case("nulls-in-nullable-positions", f'{{ item(id: "2") {{ {ITEM_FIELDS} extra {{ width }} }} }}'),
    Case("lists-with-null-items-and-tuples", f'{{ item(id: "2") {{ {LIST_FIELDS} }} }}'),
    Case("full-lists", f'{{ item(id: "1") {{ {LIST_FIELDS} dimensions {{ width height }} }} }}'),
    Case("id-from-int", '{ item(id: "int-id") { id } }'),
    Case("list-from-generator", '{ item(id: "generator-scores") { scores } }'),
    Case("missing-item-is-null", '{ item(id: "missing") { name } }'),
    Case("root-scalars", "{ now version money(cents: 1999) }"),
    Case("aliases", '{ a: item(id: "1") { n: name c: color d: dimensions { w: width } } '
                    'b: item(id: "2") { n: name id } v: version }'),
    Case("named-and-inline-fragments", """
        query Fragments {
          item(id: "1") { ...Bits ... on Item { color tags { name } } ... { note } name }
        }
        fragment Bits on Item { id name ...Size }
        fragment Size on Item { dimensions { width } }
    """),
    Case("fragment-on-root-type", "{ ...Root } fragment Root on Query { version now }"),
    Case("merged-fields", '{ item(id: "1") { name } item(id: "1") { color dimensions { width } } }'),
    Case("merged-fields-error-has-every-location",
         '{ item(id: "bad-extra") { extra { height } extra { width height } } }', errors=1),
    Case("same-fragment-spread-twice",
         '{ item(id: "bad-extra") { ...Extra name ...Extra } } fragment Extra on Item { extra { height } }',
         errors=1),
    Case("same-fragment-in-merged-fields",
         '{ item(id: "bad-extra") { ...Extra } item(id: "bad-extra") { ...Extra } } '
         "fragment Extra on Item { extra { height } }", errors=1),
    Case("variables-and-defaults", "query Get($id: ID!, $ids: [ID!]! = [\"1\", \"boom\"]) "
                                   "{ item(id: $id) { name } items(ids: $ids) { id } }",
         variables={"id": "2"}, errors=1),
    Case("input-object-and-enum-variable", "query($input: GreetInput!) { greet(input: $input) }",
         variables={"input": {"name": "Ann", "color": "GREEN"}}),
    Case("maybe-argument-left-out-null-or-given",
         'query($l: String) { out: maybeLabel nulled: maybeLabel(label: null) given: maybeLabel(label: "x") '
         'fromVar: maybeLabel(label: $l) }', variables={"l": None}),
    Case("enum-argument-literal", '{ greet(input: {name: "Bo", color: RED, greeting: "Hi"}) }'),
    Case("argument-null-from-variable", 'query($id: ID = "1") { item(id: $id) { name } version }',
         variables={"id": None}, errors=1),
    Case("root-error", "{ failing version }", errors=1),
    Case("root-error-with-extensions", "{ forbidden version }", errors=1),
    Case("root-returns-exception", "{ returnsError }", errors=1),
    Case("root-non-null-null-nulls-data", "{ version nullRequired }", errors=1, data_null=True),
    Case("root-non-null-raise-nulls-data", "{ failingRequired }", errors=1, data_null=True),
    Case("sync-root-non-null-null-nulls-data", '{ syncNullRequired item(id: "1") { name } }',
         errors=1, data_null=True),
    Case("nested-non-null-to-nearest-nullable",
         '{ item(id: "bad-dims") { name dimensions { width height } } version }', errors=1),
    Case("nested-non-null-in-nullable-object", '{ item(id: "bad-extra") { name extra { width height } } }',
         errors=1),
    Case("nested-non-null-up-to-data-null",
         '{ version requiredItem(id: "bad-dims") { name dimensions { height } } }', errors=1, data_null=True),
    Case("required-item-missing", '{ requiredItem(id: "missing") { name } }', errors=1, data_null=True),
    Case("required-item-raises", '{ requiredItem(id: "boom") { name } }', errors=1, data_null=True),
    Case("non-null-list-item-fails", '{ item(id: "bad-tag") { name tags { name weight } } }', errors=1),
    Case("nullable-list-item-fails", '{ item(id: "bad-maybe-tag") { name maybeTags { name weight } } }',
         errors=1),
    Case("list-items-none-and-exceptions",
         '{ items(ids: ["1", "missing", "boom", "bad-dims"]) { id dimensions { height } } }', errors=2),
    Case("strict-list-item-fails-to-data-null",
         '{ strictItems(ids: ["1", "bad-dims"]) { id dimensions { height } } }', errors=1, data_null=True),
    Case("strict-list-item-null-to-data-null", '{ strictItems(ids: ["1", "missing"]) { id } }',
         errors=1, data_null=True),
    Case("scalar-list-items-fail", '{ item(id: "bad-score") { scores } }', errors=2),
    Case("non-null-scalar-list-item-null", '{ item(id: "bad-rank") { ranks name } }', errors=1),
    Case("nested-list-null-inner-list", '{ item(id: "bad-matrix") { matrix } }', errors=1),
    Case("enum-value-not-in-enum", '{ item(id: "bad-color") { name color } }', errors=1),
    Case("custom-scalar-serializer-raises", '{ item(id: "bad-discount") { discount price } }', errors=1),
    Case("custom-scalar-serializer-gives-none", '{ item(id: "zero-price") { discount price } }', errors=1),
    Case("root-custom-scalar-raises", "{ money(cents: -1) version }", errors=1),
    Case("datetime-serializer-fails", '{ item(id: "bad-date") { createdAt } }', errors=1),
    Case("string-is-not-a-list", '{ item(id: "string-tags") { tags { name } } }', errors=1),
    Case("dict-is-not-a-list", '{ item(id: "dict-scores") { scores } }', errors=1),
    Case("bytearray-is-not-a-list", '{ item(id: "bytearray-scores") { scores } }', errors=1),
    Case("mapping-is-not-a-list", '{ item(id: "mapping-scores") { scores } }', errors=1),
    Case("exception-value-in-attribute", '{ item(id: "exc-note") { note name } }', errors=1),
    Case("missing-attribute", '{ item(id: "no-note") { name note } }', errors=1),
    Case("root-fields-run-concurrently", "{ waitForSignal sendSignal }"),
    Case("root-errors-in-completion-order", "{ late: lateFailure early: failing }", errors=2),
    Case("non-null-root-failure-after-sibling-errors", "{ a: failing b: nullRequired c: failing }",
         errors=3, data_null=True),
    Case("sync-non-null-root-failure-after-async-field", "{ failing syncNullRequired }",
         errors=1, data_null=True),
    Case("mutation-fields-run-in-order", 'mutation { first: append(entry: "a", delay: 0.02) '
                                         'second: append(entry: "b") third: append(entry: "c") }'),
    Case("mutation-stops-at-non-null-failure", 'mutation { first: append(entry: "a") '
                                               'bad: appendRequired(entry: "") third: append(entry: "c") }',
         errors=1, data_null=True),
    Case("mutation-object-between-fields", 'mutation { first: append(entry: "a") made: create(input: '
                                           '{name: "n", color: RED, tags: ["t"]}) { name tags { name weight } } '
                                           'last: append(entry: "b") }'),
    Case("plain-input-every-field",
         "mutation($n: NoteInput!) { note(input: $n, extra: [{text: \"b\", author: null}], label: \"L\") }",
         variables={"n": {"text": "a", "author": "me", "tags": ["x", "y"], "priority": 1, "score": 2.5,
                          "pinned": True}}),
    Case("plain-input-fields-left-out", 'mutation { note(input: {text: "a", author: null}) }'),
    Case("plain-input-null-optionals", 'mutation { note(input: {text: "a", author: null, priority: null, '
                                       'score: null}, extra: null, label: null) }'),
    Case("plain-input-list-variable", "mutation($e: [NoteInput!]) { note(input: {text: \"a\", author: \"z\"}, "
                                      "extra: $e) }",
         variables={"e": [{"text": "c", "author": None, "tags": []}, {"text": "d", "author": "q"}]}),
    Case("mutation-with-input-variable",
         "mutation Make($input: ItemInput!) { create(input: $input) { id name color tags { name weight } } }",
         variables={"input": {"name": "Lamp", "color": "GREEN", "tags": ["home", "light"]}}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_same_answer_as_graphql_core(case: Case, direct: bool, later: bool) -> None:
    _valid(case.document)
    reference_context, compiled_context = Context(), Context()
    expected = await _reference(case.document, case.variables, reference_context)
    assert len(expected.errors or []) == case.errors, expected.errors
    assert (expected.data is None) == case.data_null, expected.data

    got = await _compiled(case.document, case.variables, compiled_context, direct, later)

    assert _answer(got, compiled_context) == _answer(expected, reference_context)


async def test_mutation_fields_run_serially(direct: bool) -> None:
    """The first field's side effect lands before the second field starts, although it sleeps."""
    document = 'mutation { first: append(entry: "a", delay: 0.02) second: append(entry: "b") }'
    context = Context()
    result = await _compiled(document, None, context, direct)
    assert result.errors is None
    assert context.log == ["a", "b"]
    assert result.data == {"first": ["a"], "second": ["a", "b"]}


async def test_compiles_once_and_runs_again() -> None:
    """A plan is made once and can serve many requests."""
    compiled = compile_operation(graphql_schema(SCHEMA), parse("query($id: ID!) { item(id: $id) { name } }"),
                                 SCHEMA.execution_context_class)
    assert compiled is not None
    answers = [(await compiled.execute(Context(), {"id": i})).data for i in ("1", "2", "missing")]
    assert answers == [{"item": {"name": "Item 1"}}, {"item": {"name": "Item 2"}}, {"item": None}]


async def test_later_requests_keep_their_own_variables_and_context() -> None:
    """Reusing the first request's executor leaks neither its variables, its context nor its errors."""
    compiled = compile_operation(graphql_schema(SCHEMA), parse('mutation($e: String!) { append(entry: $e) }'),
                                 SCHEMA.execution_context_class)
    assert compiled is not None
    first, second = Context(), Context()
    assert (await compiled.execute(first, {"e": "a"})).data == {"append": ["a"]}
    refused = await compiled.execute(second, {})
    assert refused.data is None and refused.errors and "$e" in refused.errors[0].message
    assert (await compiled.execute(second, {"e": "b"})).data == {"append": ["b"]}
    assert (first.log, second.log) == (["a"], ["b"])


VARIABLE_ERRORS = [
    pytest.param("query($id: ID!) { item(id: $id) { name } }", {}, id="missing-required"),
    pytest.param("query($id: ID!) { item(id: $id) { name } }", None, id="no-variables-at-all"),
    pytest.param("query($id: ID!) { item(id: $id) { name } }", {"id": None}, id="null-for-non-null"),
    pytest.param("query($id: ID!) { item(id: $id) { name } }", {"id": {"x": 1}}, id="object-for-id"),
    pytest.param("query($cents: Int!) { money(cents: $cents) }", {"cents": "ten"}, id="string-for-int"),
    pytest.param("query($cents: Int!) { money(cents: $cents) }", {"cents": 2**40}, id="int-out-of-range"),
    pytest.param("query($ids: [ID!]!) { items(ids: $ids) { id } }", {"ids": ["1", None]}, id="null-list-item"),
    pytest.param("query($input: GreetInput!) { greet(input: $input) }", {"input": {"color": "RED"}},
                 id="input-missing-field"),
    pytest.param("query($input: GreetInput!) { greet(input: $input) }",
                 {"input": {"name": "a", "color": "RED", "extra": 1}}, id="input-unknown-field"),
    pytest.param("query($input: GreetInput!) { greet(input: $input) }",
                 {"input": {"name": "a", "color": "PURPLE"}}, id="enum-not-a-value"),
    pytest.param("query($a: ID!, $b: Int!) { item(id: $a) { name } money(cents: $b) }", {},
                 id="two-missing"),
    pytest.param("mutation($input: ItemInput!) { create(input: $input) { id } }",
                 {"input": {"name": "x", "color": "RED", "tags": [1, None]}}, id="mutation-bad-list-input"),
]


# Variables each document above accepts, for a request that comes first and succeeds.
VALID_VARIABLES = {
    "query($id: ID!) { item(id: $id) { name } }": {"id": "1"},
    "query($cents: Int!) { money(cents: $cents) }": {"cents": 10},
    "query($ids: [ID!]!) { items(ids: $ids) { id } }": {"ids": ["1"]},
    "query($input: GreetInput!) { greet(input: $input) }": {"input": {"name": "a", "color": "RED"}},
    "query($a: ID!, $b: Int!) { item(id: $a) { name } money(cents: $b) }": {"a": "1", "b": 1},
    "mutation($input: ItemInput!) { create(input: $input) { id } }": {"input": {"name": "x", "color": "RED"}},
}


@pytest.mark.parametrize(("document", "variables"), VARIABLE_ERRORS)
async def test_variable_coercion_errors(document: str, variables: dict[str, Any] | None, direct: bool,
                                        later: bool) -> None:
    _valid(document)
    reference_context, compiled_context = Context(), Context()
    expected = await _reference(document, variables, reference_context)
    assert expected.data is None and expected.errors, expected

    compiled = compile_operation(graphql_schema(SCHEMA), parse(document), SCHEMA.execution_context_class,
                                 _direct if direct else None)
    assert compiled is not None
    if later:
        warm_up = await compiled.execute(Context(), VALID_VARIABLES[document])
        assert warm_up.errors is None, warm_up.errors
    got = await compiled.execute(compiled_context, variables)

    assert got.data is None
    assert _answer(got, compiled_context) == _answer(expected, reference_context)


NOT_COMPILED = [
    pytest.param('{ item(id: "1") { name @include(if: true) } }', id="include-on-field"),
    pytest.param('{ item(id: "1") @skip(if: false) { name } }', id="skip-on-root-field"),
    pytest.param('query($on: Boolean!) { version @include(if: $on) }', id="include-with-variable"),
    pytest.param('{ item(id: "1") { ...Bits @skip(if: false) } } fragment Bits on Item { name }',
                 id="skip-on-fragment-spread"),
    pytest.param('{ item(id: "1") { ... @include(if: true) { name } } }', id="include-on-inline-fragment"),
    pytest.param('{ item(id: "1") { ...Bits } } fragment Bits on Item { name @skip(if: false) }',
                 id="skip-inside-named-fragment"),
    pytest.param('{ item(id: "1") { shout } }', id="resolver-below-root"),
    pytest.param('{ item(id: "1") { initials(upper: true) } }', id="arguments-below-root"),
    pytest.param('{ item(id: "1") { ...Bits } } fragment Bits on Item { name shout }',
                 id="resolver-inside-fragment"),
    pytest.param("{ named { name } }", id="interface"),
    pytest.param("{ person { name } }", id="object-implementing-interface"),
    pytest.param("{ search { ... on Item { name } } }", id="union"),
    pytest.param("{ checked { value } }", id="is-type-of"),
    pytest.param("{ __typename }", id="typename-at-root"),
    pytest.param('{ item(id: "1") { __typename name } }', id="typename-below-root"),
    pytest.param('{ item(id: "1") { ... on Item { __typename } } }', id="typename-in-inline-fragment"),
    pytest.param("{ __schema { queryType { name } } }", id="schema-introspection"),
    pytest.param('{ __type(name: "Item") { name } }', id="type-introspection"),
    pytest.param("subscription { ticks }", id="subscription"),
    pytest.param("query A { version } query B { now }", id="two-queries"),
    pytest.param('query A { version } mutation B { append(entry: "x") }', id="query-and-mutation"),
]


@pytest.mark.parametrize("document", NOT_COMPILED)
def test_not_compiled(document: str) -> None:
    _valid(document)
    assert compile_operation(graphql_schema(SCHEMA), parse(document), SCHEMA.execution_context_class) is None


@pytest.mark.parametrize(("field", "planned"), [
    ("note", True), ("item", True), ("append", True), ("version", True),
    ("greet", False),  # an enum inside the input: Strawberry converts it
    ("maybe_label", False),  # Maybe: Strawberry tells a missing argument from null
    ("create", False),
])
def test_direct_call_plans_plain_arguments_only(field: str, planned: bool) -> None:
    target = graphql_schema(SCHEMA)
    root = target.mutation_type if field in ("note", "append", "create") else target.query_type
    assert root is not None
    assert (direct_call(SCHEMA, root.fields[SCHEMA.config.name_converter.apply_naming_config(field)]) is not None) \
        == planned
