"""The public schema documents itself: GraphiQL's docs pane has a description for every element."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    is_introspection_type,
    is_specified_scalar_type,
)

from schema import build_schema


def _described(description: str | None) -> bool:
    return bool(description and description.strip())


def undescribed(graphql_schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument, enum value and input field without a description, by its path."""
    missing: list[str] = []
    for name, type_ in sorted(graphql_schema.type_map.items()):
        if is_introspection_type(type_) or is_specified_scalar_type(type_):
            continue
        if not _described(type_.description):
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                if not _described(field.description):
                    missing.append(f"{name}.{field_name}")
                missing.extend(f"{name}.{field_name}({arg_name}:)" for arg_name, arg in field.args.items()
                               if not _described(arg.description))
        elif isinstance(type_, GraphQLInputObjectType):
            missing.extend(f"{name}.{field_name}" for field_name, field in type_.fields.items()
                           if not _described(field.description))
        elif isinstance(type_, GraphQLEnumType):
            missing.extend(f"{name}.{value_name}" for value_name, value in type_.values.items()
                           if not _described(value.description))
    return missing


def test_every_schema_element_has_a_description() -> None:
    """Every type, field, argument, enum value, input field and scalar of the public schema is described."""
    assert [] == undescribed(build_schema()._schema)
