"""Subscription events turned into GraphQL results once, however many subscribers receive them.

graphql-core maps every event of every subscriber through the operation's selection set, and
Strawberry's protocol handlers encode every result again for every socket. With ten thousand
watchers of one product that is ten thousand identical executions and encodings per stock
change. Here both happen once per distinct (operation, variables, event):

- A subscription resolver yields `Shared(key, value)` instead of `value` when the result of the
  selection set depends on the value alone (no resolver below it reads the context or the
  viewer). `key` is hashable and equal for equal values.
- `LiveExecutor`, the schema's executor class (graphql-core's `executor_class` hook, passed
  through Strawberry's public `execution_context_class`; it extends Strawberry's own), executes
  such an event as graphql-core would, with `value` as the root value, keeps the result in a
  small cache keyed by the schema, the operation's node, its coerced variables and `key`, and gives the next
  subscriber a copy of it.
- The result's `data` is a `SharedData` dict that remembers its encoded form, so the view's
  `encode_json` (server.graphql_view) writes `{"data": ...}` once and splices it into each
  subscriber's `next` message.
- Events whose values differ per subscriber (a shopper's place in a drop's line) are executed per
  value, but the fields they select are collected once per (operation, variables): graphql-core
  collects the root fields again for every event, and memoizes subfields by the identity of what
  it collected, so without this every event of every subscriber collected every level afresh
  (a fifth of a process' time delivering a line's updates to 10,000 shoppers).

Everything per subscriber stays per subscriber: its resolver (authorization, the first event, the
end at a final status), Strawberry's error processing and masking, and the protocol's message.
tests/schema/test_live.py holds answers and bytes to what graphql-core and Strawberry give
without this module.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult, Executor, GraphQLSchema, OperationDefinitionNode
from graphql.pyutils import is_awaitable

from schema.strawberry_internals import StrawberryExecutor

__all__ = ["LiveExecutor", "Shared", "SharedData", "encode_message"]

# Results kept: a few per live channel are enough (each event is wanted once, by all at once).
CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Shared:
    """A subscription event whose result depends on itself and the operation only."""

    key: Hashable
    value: Any


class SharedData(dict[str, Any]):
    """A result's `data`, shared by every subscriber it is sent to, with its encoding once made."""

    __slots__ = ("encoded",)

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.encoded: str | None = None


def _dumps(value: Any) -> str:
    # What Strawberry's encode_json writes.
    return json.dumps(value, separators=(",", ":"))


def encode_message(message: dict[str, Any], dumps: Callable[[Any], str] = _dumps) -> str | None:
    """`message` encoded with its shared payload spliced in; None when it carries no shared data
    (or carries more than data, such as errors, which are encoded per message as usual)."""
    payload = message.get("payload")
    if type(payload) is not dict or len(payload) != 1:
        return None
    data = payload.get("data")
    if not isinstance(data, SharedData):
        return None
    if data.encoded is None:
        data.encoded = dumps({"data": dict(data)})
    return "{" + ",".join(
        f"{dumps(name)}:{data.encoded if name == 'payload' else dumps(value)}" for name, value in message.items()
    ) + "}"


# Parsed documents are shared by every schema of the process (Strawberry's ParserCache is), so
# the schema is part of the key: (schema, operation node, coerced variables, event key).
_Key = tuple[int, int, str, Hashable]


class _Results:
    def __init__(self, size: int) -> None:
        self._size = size
        # key -> (the schema and the operation node, kept so that their ids cannot be reused while
        # cached; the result)
        self._entries: OrderedDict[_Key, tuple[GraphQLSchema, OperationDefinitionNode, ExecutionResult]] = (
            OrderedDict()
        )

    def get(self, key: _Key, schema: GraphQLSchema, operation: OperationDefinitionNode) -> ExecutionResult | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] is not schema or entry[1] is not operation:
            return None
        return entry[2]

    def put(self, key: _Key, schema: GraphQLSchema, operation: OperationDefinitionNode,
            result: ExecutionResult) -> ExecutionResult:
        shared = ExecutionResult(SharedData(result.data) if result.data is not None else None, result.errors)
        self._entries[key] = (schema, operation, shared)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return shared


RESULTS = _Results(CACHE_SIZE)


class _Collection:
    """An operation's root fields as graphql-core collected them for its first event, and the
    subfields it collected below them since, keyed as graphql-core's own memo is (the return type
    and the identity of the field list, which stays the same because the root fields do)."""

    __slots__ = ("fields", "operation", "schema", "subfields")

    def __init__(self, schema: GraphQLSchema, operation: OperationDefinitionNode, fields: Any) -> None:
        self.schema, self.operation, self.fields = schema, operation, fields
        self.subfields: dict[tuple[Any, int], tuple[Any, Any]] = {}


COLLECTIONS: OrderedDict[tuple[int, int, str], _Collection] = OrderedDict()


def _copy(result: ExecutionResult) -> ExecutionResult:
    # Each subscriber gets its own result (Strawberry and its extensions replace `errors` on it);
    # the data dict and the error objects are shared and never changed after execution.
    return ExecutionResult(result.data, list(result.errors) if result.errors else None)


class LiveExecutor(StrawberryExecutor):
    """graphql-core's executor, executing a `Shared` event once for all who receive it."""

    _live_variables: str | None = None
    _collection: _Collection | None = None

    def build_per_event_executor(self, payload: Any) -> Executor:
        if isinstance(payload, Shared) and self._live_variables is None:
            # Coerced once per subscription; repr is stable for the JSON-like values variables hold.
            self._live_variables = repr(sorted(self.variable_values.coerced.items()))
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        event = self.root_value
        if not isinstance(event, Shared):
            return super().execute_operation(serially)
        schema, operation = self.schema, self.operation
        key = (id(schema), id(operation), self._live_variables or "", event.key)
        cached = RESULTS.get(key, schema, operation)
        if cached is not None:
            return _copy(cached)
        result = super().build_per_event_executor(event.value).execute_operation(serially)
        if is_awaitable(result):
            return self._cache_later(key, schema, operation, result)
        assert isinstance(result, ExecutionResult)  # a subscription event is never incremental
        return _copy(RESULTS.put(key, schema, operation, result))

    def execute_collected_root_fields(self, root_type: Any, root_value: Any, grouped_field_set: Any, serially: bool,
                                      new_defer_usages: Any) -> Any:
        if self._live_variables is None or new_defer_usages:
            return super().execute_collected_root_fields(root_type, root_value, grouped_field_set, serially,
                                                         new_defer_usages)
        key = (id(self.schema), id(self.operation), self._live_variables)
        collection = COLLECTIONS.get(key)
        if collection is None or collection.schema is not self.schema or collection.operation is not self.operation:
            collection = COLLECTIONS[key] = _Collection(self.schema, self.operation, grouped_field_set)
            if len(COLLECTIONS) > CACHE_SIZE:
                COLLECTIONS.popitem(last=False)
        self._collection = collection
        return super().execute_collected_root_fields(root_type, root_value, collection.fields, serially,
                                                     new_defer_usages)

    def collect_subfields(self, return_type: Any, field_details_list: Any) -> Any:
        collection = self._collection
        if collection is None:
            return super().collect_subfields(return_type, field_details_list)
        key = (return_type, id(field_details_list))
        hit = collection.subfields.get(key)
        if hit is None:
            # The list is kept with its fields so that its id cannot be reused, as graphql-core does.
            hit = collection.subfields[key] = (field_details_list,
                                               super().collect_subfields(return_type, field_details_list))
        return hit[1]

    async def _cache_later(self, key: _Key, schema: GraphQLSchema, operation: OperationDefinitionNode,
                           pending: Any) -> ExecutionResult:
        return _copy(RESULTS.put(key, schema, operation, await pending))
