"""The private parts of Strawberry the planner cannot do without, each in one place.

Everything else the planner reads is public (`strawberry.resolvers.is_default_resolver`,
`Schema.get_extensions`, `Schema.execution_context_class`, graphql-core's executor) or an
attribute of Strawberry's field and resolver definitions. What is here has no public equivalent
in the Strawberry version pyproject.toml pins. If an upgrade changes one of these, or one of the
definitions' attributes, `tests/schema/test_strawberry_internals.py` names it and says what to fix.
"""

from __future__ import annotations

from enum import EnumMeta
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLResolveInfo, GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["StrawberryExecutor", "describe_enum", "field_definition", "graphql_schema", "resolver_info"]

# The graphql-core executor class Strawberry uses when a schema names none (it carries the
# operation's extensions to resolvers). Schema(execution_context_class=...) is public, the
# default's class is not exported: schema.live's executor extends it so that nothing else changes.
StrawberryExecutor = StrawberryGraphQLCoreExecutionContext


def graphql_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry executes against.

    Strawberry keeps it as `Schema._schema` and offers no accessor; its own extensions
    (ValidationCache, the directives extension) read that attribute too. Persisted operations
    are validated and planned against this very object, so they meet the types a request meets.
    """
    return schema._schema


def resolver_info(info_class: type[Any], raw_info: GraphQLResolveInfo, field: StrawberryField) -> Any:
    """The `info` argument a Strawberry resolver receives, built as Strawberry builds it.

    `Info` is a dataclass whose two fields are private (`_raw_info`, `_field`) and Strawberry has
    no factory for it; its field wrapper and its directives extension construct it exactly so.
    A planned root field calls its resolver directly and must hand it the same object.
    """
    return info_class(_raw_info=raw_info, _field=field)


def field_definition(field: GraphQLField) -> StrawberryField | None:
    """The Strawberry field a graphql-core field was made from, if Strawberry made it.

    Strawberry's converter keeps it in the field's `extensions` under a key it names
    `GraphQLCoreConverter.DEFINITION_BACKREF`, an undocumented constant.
    """
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return definition if isinstance(definition, StrawberryField) else None


def describe_enum(enum_cls: EnumMeta, description: str, values: dict[str, str]) -> None:
    """Expose an enum defined elsewhere (db.enums) with a description for it and for each value.

    `strawberry.enum(cls)` takes value descriptions only from members written as
    `strawberry.enum_value(...)`, which would mean defining the enum a second time here. Its
    definition's values are plain dataclasses, so their descriptions are filled in afterwards.
    Every member must be described, and nothing else. The enum itself is what the schema's types
    then annotate with: Strawberry marks the class, it does not make a new one.
    """
    strawberry.enum(enum_cls, description=description)
    definition = enum_cls.__strawberry_definition__  # type: ignore[attr-defined]
    if {v.name for v in definition.values} != set(values):
        raise ValueError(f"{enum_cls.__name__}: describe exactly its members {[v.name for v in definition.values]}")
    for value in definition.values:
        value.description = values[value.name]
