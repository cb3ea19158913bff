"""Running a fixed operation from a plan made once, instead of graphql-core's general executor.

For every request graphql-core works out again what a fixed document already says: which fields
to collect, their types, a resolve-info object per field, how to complete each value. On the
buying path that was a third of a request's CPU. A persisted operation (schema.persisted) can
have that work done once, at start-up: `compile_operation` turns it into a plan when everything
below its root fields is plain data (Strawberry fields without resolvers, of object, list,
scalar or enum type, no directives, no abstract types, no `is_type_of` checks); anything else
returns None and runs on the usual path.

Root fields still run their Strawberry resolvers, with arguments coerced by graphql-core and
converted by Strawberry, and a resolve info built by the same executor class Strawberry uses.
Completion, error location and null propagation mirror graphql-core's executor step for step
(`handle_field_error`, `complete_value`); tests run every persisted operation through both and
compare the answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    VariableValues,
    coerce_input_value,
    default_field_resolver,
    located_error,
)
from graphql.execution.get_variable_signature import GraphQLVariableSignature, get_variable_signature
from graphql.execution.values import (
    VariableValueSource,
    get_argument_values,
    get_variable_values,
    input_is_nested_too_deeply,
)
from graphql.pyutils import Path, gather_with_cancel, inspect, is_awaitable, is_iterable
from strawberry.resolvers import is_default_resolver

from schema.strawberry_internals import field_definition


class NotCompilable(Exception):
    """The operation needs something the plan does not do; it runs on the usual path."""


@dataclass(frozen=True)
class Leaf:
    type: GraphQLScalarType | GraphQLEnumType


@dataclass(frozen=True)
class ListOf:
    item: Plan


@dataclass(frozen=True)
class NonNull:
    inner: Plan


@dataclass(frozen=True)
class ObjectOf:
    fields: tuple[FieldPlan, ...]


Plan = Leaf | ListOf | NonNull | ObjectOf


@dataclass(frozen=True)
class FieldPlan:
    key: str  # response key: the alias or the field name
    get: Callable[[Any], Any]
    return_type: GraphQLOutputType
    plan: Plan
    nodes: tuple[FieldNode, ...]
    parent_type: GraphQLObjectType
    field_name: str


@dataclass(frozen=True)
class RootField:
    key: str
    definition: GraphQLField
    nodes: list[FieldNode]
    plan: Plan
    # (source, resolve info, coerced arguments) -> the field's value: its resolve function, or a
    # caller that skips Strawberry's per-request argument conversion (schema.direct_call).
    call: RootCaller


RootCaller = Callable[[Any, Any, dict[str, Any]], Any]


def _resolve_call(definition: GraphQLField) -> RootCaller:
    resolve = definition.resolve or default_field_resolver
    return lambda source, info, args: resolve(source, info, **args)


class _Collector:
    """Fields of a selection set grouped by response key, fragments inlined (spec 6.3.2)."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments

    def collect(self, parent: GraphQLObjectType,
                selection_sets: Iterable[SelectionSetNode]) -> dict[str, list[FieldNode]]:
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()  # as graphql-core: a fragment spread twice is collected once
        for selection_set in selection_sets:
            self._into(parent, selection_set, grouped, visited)
        return grouped

    def _into(self, parent: GraphQLObjectType, selection_set: SelectionSetNode,
              grouped: dict[str, list[FieldNode]], visited: set[str]) -> None:
        for selection in selection_set.selections:
            if selection.directives:
                raise NotCompilable("directives (@skip, @include) decide per request")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                self._check_condition(parent, selection.type_condition.name.value if selection.type_condition else None)
                self._into(parent, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                if getattr(selection, "arguments", None):
                    raise NotCompilable("fragment arguments")
                if selection.name.value in visited:
                    continue
                visited.add(selection.name.value)
                fragment = self._fragments[selection.name.value]
                self._check_condition(parent, fragment.type_condition.name.value)
                self._into(parent, fragment.selection_set, grouped, visited)

    @staticmethod
    def _check_condition(parent: GraphQLObjectType, condition: str | None) -> None:
        if condition is not None and condition != parent.name:
            raise NotCompilable(f"a fragment on {condition} inside {parent.name}")


def _plain_getter(field: GraphQLField) -> Callable[[Any], Any]:
    """The attribute a Strawberry field without resolver reads; anything else is not plain data."""
    definition = field_definition(field)
    resolve = field.resolve
    if (
        definition is None
        or resolve is None
        or not is_default_resolver(resolve)
        or not definition.is_basic_field
        or definition.default_resolver is not getattr
        or field.args
    ):
        raise NotCompilable("a field with a resolver or arguments below the root")
    name: str = definition.python_name

    def get(source: Any) -> Any:
        return getattr(source, name)

    return get


class _Compiler:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 direct_calls: Callable[[GraphQLField], RootCaller | None] | None) -> None:
        self._schema = schema
        self._collector = _Collector(fragments)
        self._direct_calls = direct_calls

    def plan(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> Plan:
        if isinstance(type_, GraphQLNonNull):
            return NonNull(self.plan(type_.of_type, nodes))
        if isinstance(type_, GraphQLList):
            return ListOf(self.plan(type_.of_type, nodes))
        if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
            return Leaf(type_)
        if isinstance(type_, GraphQLObjectType):
            if type_.is_type_of is not None:
                raise NotCompilable(f"{type_.name} checks the runtime type of its values")
            return ObjectOf(self.fields(type_, nodes))
        raise NotCompilable(f"abstract type {type_}")

    @staticmethod
    def _definition(parent: GraphQLObjectType, nodes: list[FieldNode]) -> tuple[str, GraphQLField]:
        name = nodes[0].name.value
        if name.startswith("__"):
            raise NotCompilable("introspection fields")
        return name, parent.fields[name]

    def fields(self, parent: GraphQLObjectType, nodes: list[FieldNode]) -> tuple[FieldPlan, ...]:
        grouped = self._collector.collect(parent, [n.selection_set for n in nodes if n.selection_set])
        plans = []
        for key, field_nodes in grouped.items():
            name, definition = self._definition(parent, field_nodes)
            plans.append(FieldPlan(
                key=key, get=_plain_getter(definition), return_type=definition.type,
                plan=self.plan(definition.type, field_nodes), nodes=tuple(field_nodes),
                parent_type=parent, field_name=name,
            ))
        return tuple(plans)

    def roots(self, operation: OperationDefinitionNode) -> tuple[GraphQLObjectType, list[RootField]]:
        root = self._schema.get_root_type(operation.operation)
        if root is None:
            raise NotCompilable(f"no {operation.operation.value} type")
        grouped = self._collector.collect(root, [operation.selection_set])
        fields = []
        for key, nodes in grouped.items():
            _, definition = self._definition(root, nodes)
            call = (self._direct_calls(definition) if self._direct_calls else None) or _resolve_call(definition)
            fields.append(RootField(key, definition, nodes, self.plan(definition.type, nodes), call))
        return root, fields


# Executor.build's default: how many variable errors one request reports.
_MAX_COERCION_ERRORS = 50


class CompiledOperation:
    """One query or mutation, ready to run: `await compiled.execute(context, variables)`."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
                 root: GraphQLObjectType, fields: list[RootField], executor_class: Any) -> None:
        self._schema = schema
        self._document = document
        self._operation = operation
        self._root = root
        self._fields = fields
        self._executor_class = executor_class
        self._serial = operation.operation == OperationType.MUTATION
        self._template: Any = None
        signatures = [get_variable_signature(schema, node) for node in operation.variable_definitions or ()]
        self._signatures: list[GraphQLVariableSignature] | None = [
            s for s in signatures if isinstance(s, GraphQLVariableSignature)]
        if len(self._signatures) != len(signatures):
            self._signatures = None  # a validated document has none; graphql-core words the error

    def _executor(self, context: Any, variables: dict[str, Any] | None) -> Any:
        """graphql-core's executor for one request (or its variable errors): it coerces the variables
        and builds resolve infos exactly as for any request; only field collection and completion
        are replaced by the plan."""
        if self._template is None:
            executor = self._executor_class.build(
                self._schema, self._document, None, context, variables,
                self._operation.name.value if self._operation.name else None,
            )
            if not isinstance(executor, list):
                self._template = executor.build_per_event_executor(None)
                self._template.context_value = None
            return executor
        # `build` finds the operation and checks the schema again on every call (about a tenth of a
        # planned request's CPU); between requests of one operation only the variables and the
        # context differ. So later requests copy the first one's executor, the reuse graphql-core
        # makes for subscription events, and coerce their variables as `build` does.
        values = self._usual_variables(variables or {}) or get_variable_values(
            self._schema, self._operation.variable_definitions or (), variables or {},
            max_errors=_MAX_COERCION_ERRORS)
        if isinstance(values, list):
            return values
        executor = self._template.build_per_event_executor(None)
        executor.variable_values = values
        executor.context_value = context
        return executor

    def _usual_variables(self, inputs: dict[str, Any]) -> VariableValues | None:
        """The usual request's variables, coerced as graphql-core's `get_variable_values` does
        without finding each variable's type in the document again: every variable given, not
        null, and valid. Anything else (a default to apply, a null, an error to word) is None and
        left to graphql-core."""
        if self._signatures is None:
            return None
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for signature in self._signatures:
            value = inputs.get(signature.name, Undefined)
            if value is Undefined or value is None or input_is_nested_too_deeply(value, signature.type):
                return None
            coerced_value = coerce_input_value(value, signature.type)
            if coerced_value is Undefined:
                return None
            sources[signature.name] = VariableValueSource(signature, value)
            coerced[signature.name] = coerced_value
        return VariableValues(sources, coerced)

    async def execute(self, context: Any, variables: dict[str, Any] | None) -> ExecutionResult:
        executor = self._executor(context, variables)
        if isinstance(executor, list):
            return ExecutionResult(data=None, errors=executor)
        errors: list[GraphQLError] = []
        data: dict[str, Any] = {}
        try:
            if self._serial:
                for field in self._fields:
                    value = self._root_field(executor, field, errors)
                    data[field.key] = await value if is_awaitable(value) else value
            else:
                await self._root_fields_together(executor, data, errors)
        except GraphQLError as error:
            # A non-null root field came out null: the whole `data` is null (spec 6.4.4), and
            # errors that arrive later from fields still settling are not reported.
            return ExecutionResult(data=None, errors=[*errors, error])
        return ExecutionResult(data=data, errors=errors or None)

    async def _root_fields_together(self, executor: Any, data: dict[str, Any], errors: list[GraphQLError]) -> None:
        # graphql-core's execute_fields: resolvers started in order, awaited together, so root
        # fields of a query overlap and share DataLoader batches.
        pending: list[str] = []
        try:
            for field in self._fields:
                value = self._root_field(executor, field, errors)
                data[field.key] = value
                if is_awaitable(value):
                    pending.append(field.key)
        except GraphQLError:
            _settle_in_background([data[key] for key in pending])
            raise
        if len(pending) == 1:
            data[pending[0]] = await data[pending[0]]
        elif pending:
            data.update(zip(pending, await gather_with_cancel(*(data[key] for key in pending)), strict=True))

    def _root_field(self, executor: Any, field: RootField, errors: list[GraphQLError]) -> Any:
        path = Path(None, field.key, self._root.name)
        try:
            info = executor.build_resolve_info(field.definition, field.nodes, self._root, path)
            args = get_argument_values(field.definition, field.nodes[0], executor.variable_values)
            value = field.call(None, info, args)
            if is_awaitable(value):
                return self._await_root_field(field, value, path, errors)
            return self._complete_root(field, value, path, errors)
        except Exception as raw:
            return _field_error(raw, field.definition.type, field.nodes, path, errors)

    async def _await_root_field(self, field: RootField, value: Any, path: Path, errors: list[GraphQLError]) -> Any:
        try:
            return self._complete_root(field, await value, path, errors)
        except Exception as raw:
            return _field_error(raw, field.definition.type, field.nodes, path, errors)

    def _complete_root(self, field: RootField, value: Any, path: Path, errors: list[GraphQLError]) -> Any:
        return _complete(field.plan, value, path, field.definition.type, field.nodes, self._root,
                         field.nodes[0].name.value, errors)


_SETTLING: set[asyncio.Future[Any]] = set()


def _settle_in_background(awaitables: list[Any]) -> None:
    """Let abandoned root fields finish (their errors observed, not reported), as graphql-core does."""
    if not awaitables:
        return
    future = asyncio.ensure_future(asyncio.gather(*awaitables, return_exceptions=True))
    _SETTLING.add(future)
    future.add_done_callback(_SETTLING.discard)


def _field_error(raw: Exception, return_type: GraphQLOutputType, nodes: Iterable[FieldNode], path: Path,
                 errors: list[GraphQLError]) -> Any:
    # graphql-core's handle_field_error: a non-null position passes the error up to the nearest
    # nullable one, which records it once and becomes null.
    error = located_error(raw, list(nodes), path.as_list())
    if isinstance(return_type, GraphQLNonNull):
        raise error
    errors.append(error)
    return None


def _complete(plan: Plan, value: Any, path: Path, return_type: GraphQLOutputType, nodes: Iterable[FieldNode],
              parent: GraphQLObjectType, field_name: str, errors: list[GraphQLError]) -> Any:
    if isinstance(value, Exception):
        raise value
    if isinstance(plan, NonNull):
        completed = _complete(plan.inner, value, path, return_type, nodes, parent, field_name, errors)
        if completed is None:
            raise TypeError(f"Cannot return null for non-nullable field {parent}.{field_name}.")
        return completed
    if value is None:
        return None
    if isinstance(plan, Leaf):
        coerced = plan.type.coerce_output_value(value)
        if coerced is None or coerced is Undefined:
            raise TypeError(f"Expected `{inspect(plan.type)}.coerce_output_value({inspect(value)})` "
                            f"to return non-nullable value, returned: {inspect(coerced)}")
        return coerced
    if isinstance(plan, ListOf):
        if not is_iterable(value):
            raise GraphQLError(f"Expected Iterable, but did not find one for field '{parent}.{field_name}'.")
        item_type = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        assert isinstance(item_type, GraphQLList)
        items = []
        for index, item in enumerate(value):
            item_path = path.add_key(index, None)
            try:
                items.append(_complete(plan.item, item, item_path, item_type.of_type, nodes, parent, field_name,
                                       errors))
            except Exception as raw:
                items.append(_field_error(raw, item_type.of_type, nodes, item_path, errors))
        return items
    result: dict[str, Any] = {}
    for field in plan.fields:
        field_path = path.add_key(field.key, field.parent_type.name)
        try:
            result[field.key] = _complete(field.plan, field.get(value), field_path, field.return_type, field.nodes,
                                          field.parent_type, field.field_name, errors)
        except Exception as raw:
            result[field.key] = _field_error(raw, field.return_type, field.nodes, field_path, errors)
    return result


def compile_operation(schema: GraphQLSchema, document: DocumentNode, executor_class: Any,
                      direct_calls: Callable[[GraphQLField], RootCaller | None] | None = None,
                      ) -> CompiledOperation | None:
    """A plan for the document's one query or mutation, or None if it must run on the usual path.

    `direct_calls` may offer, per root field, a caller that replaces the field's resolve function.
    """
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation == OperationType.SUBSCRIPTION:
        return None
    operation = operations[0]
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if operation.directives or any(v.directives for v in operation.variable_definitions or ()):
        return None
    try:
        root, fields = _Compiler(schema, fragments, direct_calls).roots(operation)
    except NotCompilable:
        return None
    return CompiledOperation(schema, document, operation, root, fields, executor_class)
