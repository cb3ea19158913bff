"""Calling a root field's Strawberry resolver directly, its arguments converted by a plan.

Strawberry converts a resolver's arguments on every call with a general routine (names converted,
types inspected, input classes looked up); on the buying path that was a tenth of a request's CPU.
For arguments of plain types (built-in scalars and ID, lists, optionals, and input classes of
those without a custom `from_input`) the conversion is planned once here, with Strawberry's rules:
a nullable input field left out is None unless the class gives a default, an argument left out is
not passed. The resolver is then called as Strawberry calls it: `self`, `root` or `parent` get the
source, `info` a Strawberry `Info`. A field with extensions or permission classes, a schema with
exception handlers, or an argument of another type keeps Strawberry's own wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLResolveInfo
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

from schema.strawberry_internals import field_definition, resolver_info

Converter = Callable[[Any], Any]
RootCall = Callable[[Any, GraphQLResolveInfo, dict[str, Any]], Any]

_PLAIN_SCALARS: tuple[object, ...] = (str, int, float, bool, strawberry.ID)


class _Unplannable(Exception):
    pass


def _same(value: Any) -> Any:
    return value


def _converter(type_: Any, schema: strawberry.Schema) -> Converter:
    # Exact classes: a subclass means something else (Maybe tells a missing value from null).
    if type(type_) is StrawberryOptional:
        inner = _converter(type_.of_type, schema)
        return lambda value: None if value is None else inner(value)
    if type(type_) is StrawberryList:
        item = _converter(type_.of_type, schema)
        return lambda value: None if value is None else [item(x) for x in value]
    if type_ in _PLAIN_SCALARS:
        return _same
    if has_object_definition(type_):
        return _input_converter(type_, schema)
    raise _Unplannable(f"arguments of type {type_!r}")


def _input_converter(cls: Any, schema: strawberry.Schema) -> Converter:
    definition = cls.__strawberry_definition__
    if not definition.is_input or definition.from_input is not None:
        raise _Unplannable(f"{cls.__name__} builds its own value")
    names = schema.config.name_converter
    fields = [
        (names.from_field(f), f.python_name, _converter(f.resolve_type(type_definition=definition), schema))
        for f in definition.fields
    ]
    # Strawberry's implicit default: a field without one of its own is None when left out.
    implicit = {f.python_name: None for f in definition.fields
                if f.default_value is MISSING and f.default_factory is MISSING}

    def convert(value: Any) -> Any:
        if value is None:
            return None
        kwargs = dict(implicit)
        for graphql_name, python_name, field_converter in fields:
            if graphql_name in value:
                kwargs[python_name] = field_converter(value[graphql_name])
        return cls(**kwargs)

    return convert


def direct_call(schema: strawberry.Schema, field: GraphQLField) -> RootCall | None:
    """A caller for `field`'s resolver with arguments as graphql-core coerced them, or None."""
    definition = field_definition(field)
    resolver = getattr(definition, "base_resolver", None)
    if (
        definition is None
        or resolver is None
        or definition.extensions
        or getattr(definition, "permission_classes", None)
        or schema.exception_handlers
    ):
        return None
    names = schema.config.name_converter
    try:
        arguments = [(names.from_argument(a), a.python_name, _converter(a.type, schema))
                     for a in definition.arguments]
    except _Unplannable:
        return None
    info_class = schema.config.info_class
    takes_self = resolver.self_parameter is not None
    source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p is not None]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None

    def call(source: Any, info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
        kwargs = {python_name: convert(args[graphql_name])
                  for graphql_name, python_name, convert in arguments if graphql_name in args}
        for name in source_names:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = resolver_info(info_class, info, definition)
        return resolver(source, **kwargs) if takes_self else resolver(**kwargs)

    return call
