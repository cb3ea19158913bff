"""The Strawberry and graphql-core internals the planner relies on still have the shape it expects.

Each check fails with what changed and where to fix it, so moving the pinned versions in
pyproject.toml is: bump the pin, run this file and tests/schema/test_compiled.py, fix what they say.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import strawberry
from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode, execute_sync, parse
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.resolvers import is_default_resolver
from strawberry.types.fields.resolver import StrawberryResolver

from schema.extension_policy import REPRODUCED, SKIPPABLE_HOOKS, extension_hooks, overridden_hooks
from schema.strawberry_internals import field_definition, graphql_schema, resolver_info

SEEN: list[strawberry.Info[Any, Any]] = []


@strawberry.type
class Thing:
    name: str

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class Query:
    @strawberry.field
    def thing(self, info: strawberry.Info, name: str) -> Thing:
        SEEN.append(info)
        return Thing(name=name)


SCHEMA = strawberry.Schema(query=Query)
TEXT = "query Get($n: String!) { thing(name: $n) { name shout } }"
DOCUMENT = parse(TEXT)


def _fix(where: str) -> str:
    return f" Fix {where}, then run tests/schema/test_compiled.py."


def test_graphql_schema_is_the_one_strawberry_executes() -> None:
    """graphql_schema() is an executable graphql-core schema answering as Strawberry does."""
    target = graphql_schema(SCHEMA)
    assert isinstance(target, GraphQLSchema), (
        "Strawberry no longer keeps its graphql-core schema as `Schema._schema`." + _fix(
            "schema/strawberry_internals.graphql_schema (look for where Schema.__init__ stores the GraphQLSchema)"))
    expected = SCHEMA.execute_sync(TEXT, variable_values={"n": "ann"})
    actual = execute_sync(target, DOCUMENT, variable_values={"n": "ann"})
    assert expected.data == actual.data == {"thing": {"name": "ann", "shout": "ANN"}}


def test_resolver_info_is_the_info_strawberry_passes() -> None:
    """A resolver given resolver_info() sees what it sees when Strawberry calls it."""
    SEEN.clear()
    SCHEMA.execute_sync(TEXT, variable_values={"n": "ann"}, context_value="ctx")
    [theirs] = SEEN
    target = graphql_schema(SCHEMA)
    executor = SCHEMA.execution_context_class.build(target, DOCUMENT, None, "ctx", {"n": "ann"}, None)
    assert not isinstance(executor, list), executor
    [operation] = [d for d in DOCUMENT.definitions if isinstance(d, OperationDefinitionNode)]
    node = operation.selection_set.selections[0]
    assert isinstance(node, FieldNode) and target.query_type is not None
    field = target.query_type.fields["thing"]
    definition = field_definition(field)
    assert definition is not None, (
        "Strawberry no longer keeps a field's definition in GraphQLField.extensions under "
        "GraphQLCoreConverter.DEFINITION_BACKREF." + _fix("schema/strawberry_internals.field_definition"))
    raw = executor.build_resolve_info(field, [node], target.query_type, Path(None, "thing", "Query"))
    try:
        ours = resolver_info(SCHEMA.config.info_class, raw, definition)
    except TypeError as exc:
        pytest.fail(f"Strawberry's Info is no longer built as Info(_raw_info=..., _field=...): {exc}."
                    + _fix("schema/strawberry_internals.resolver_info (see how schema_converter builds Info)"))
    for attribute in ("field_name", "python_name", "schema", "context", "root_value", "variable_values",
                      "return_type", "operation", "path", "selected_fields"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), (
            f"Info.{attribute} differs from Strawberry's own." + _fix("schema/strawberry_internals.resolver_info"))


def test_plain_fields_are_told_from_fields_with_resolvers() -> None:
    """is_default_resolver() tells a plain attribute from a resolver, which is what the plan reads."""
    thing = graphql_schema(SCHEMA).get_type("Thing")
    fields = thing.fields  # type: ignore[union-attr]
    assert is_default_resolver(fields["name"].resolve) and not is_default_resolver(fields["shout"].resolve), (
        "strawberry.resolvers.is_default_resolver no longer marks plain fields."
        + _fix("schema/compiled._plain_getter"))


def test_definition_attributes_the_planner_reads_are_there() -> None:
    """The field and resolver attributes schema.compiled and schema.direct_call read still exist."""
    target = graphql_schema(SCHEMA)
    name = field_definition(target.get_type("Thing").fields["name"])  # type: ignore[union-attr]
    thing = field_definition(target.query_type.fields["thing"])  # type: ignore[union-attr]
    assert name is not None and thing is not None
    missing = [f"StrawberryField.{a}" for a in ("is_basic_field", "default_resolver", "python_name", "arguments",
                                                "extensions", "permission_classes", "base_resolver")
               if not hasattr(name, a)]
    missing += [f"StrawberryResolver.{a}" for a in ("self_parameter", "parent_parameter", "root_parameter",
                                                    "info_parameter") if not hasattr(StrawberryResolver, a)]
    missing += [f"Schema.{a}" for a in ("exception_handlers", "execution_context_class", "get_extensions")
                if not hasattr(SCHEMA, a)]
    assert missing == [], f"gone: {missing}." + _fix("schema/compiled.py and schema/direct_call.py")
    assert name.is_basic_field and name.default_resolver is getattr and thing.base_resolver is not None
    assert thing.base_resolver.info_parameter is not None and thing.base_resolver.self_parameter is not None
    assert [a.python_name for a in thing.arguments] == ["name"]
    assert SCHEMA.config.name_converter.from_argument(thing.arguments[0]) == "name"
    assert "type_definition" in inspect.signature(name.resolve_type).parameters, (
        "StrawberryField.resolve_type no longer takes type_definition=." + _fix("schema/direct_call._input_converter"))


@pytest.mark.parametrize(("function", "leading"), [
    (lambda: SCHEMA.execution_context_class.build,
     ["schema", "document", "root_value", "context_value", "raw_variable_values", "operation_name"]),
    (lambda: SCHEMA.execution_context_class.build_resolve_info,
     ["self", "field_def", "field_nodes", "parent_type", "path"]),
    (lambda: get_argument_values, ["type_def", "node", "variable_values"]),
], ids=["ExecutionContext.build", "build_resolve_info", "get_argument_values"])
def test_graphql_core_calls_take_the_positional_arguments_the_plan_passes(function: Any, leading: list[str]) -> None:
    """The executor calls schema.compiled makes positionally still take those arguments in that order."""
    parameters = list(inspect.signature(function()).parameters)
    assert parameters[:len(leading)] == leading, (
        f"the signature is now {parameters}." + _fix("CompiledOperation.execute / _root_field in schema/compiled.py"))


def test_every_extension_hook_is_classified() -> None:
    """The hooks Strawberry offers are the ones schema.extension_policy knows how to treat."""
    execution = {"on_operation", "on_execute", "resolve", "get_results"}
    assert extension_hooks() == SKIPPABLE_HOOKS | execution, (
        f"SchemaExtension's hooks are now {sorted(extension_hooks())}. A new hook already turns planning off when "
        "an extension overrides it; if a planned persisted operation never needs it, add it to SKIPPABLE_HOOKS in "
        "schema/extension_policy.py with the reason, and update this test.")


@pytest.mark.parametrize("cls", list(REPRODUCED), ids=lambda cls: cls.__name__)
def test_reproduced_extensions_override_the_hooks_the_policy_lists(cls: type) -> None:
    """Each extension the planned path stands in for still overrides exactly the hooks it was checked for."""
    assert overridden_hooks(cls) == REPRODUCED[cls].hooks, (
        f"{cls.__name__} now overrides {sorted(overridden_hooks(cls))}, not {sorted(REPRODUCED[cls].hooks)}: "
        "planning is off until you check that the planned path still has its effect (see its `how` in "
        "REPRODUCED, schema/extension_policy.py) and update the hooks listed there.")


def test_the_schema_exposes_the_domain_enums_themselves_with_every_value_described() -> None:
    """OrderStatus, CancelReason and ErrorCode are db.enums' classes; the SDL describes each of their values."""
    from enum import StrEnum

    import pytest

    from db import enums
    from schema import build_schema
    from schema.strawberry_internals import describe_enum

    graphql = build_schema()._schema
    for enum in (enums.OrderStatus, enums.CancelReason, enums.ErrorCode):
        served = graphql.get_type(enum.__name__)
        assert [m.value for m in enum] == list(served.values), enum.__name__
        assert all(v.description for v in served.values.values()), enum.__name__

    class Partly(StrEnum):
        A = "A"
        B = "B"

    with pytest.raises(ValueError, match="describe exactly its members"):
        describe_enum(Partly, "two values, one described", {"A": "the first"})
