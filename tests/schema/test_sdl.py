"""The exported schema file is what the server serves, and it keeps the contract of API.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from graphql import Node, Visitor, parse, print_ast, visit

import schema

SDL_FILE = Path(schema.__file__).resolve().parent / "schema.graphql"

# Every root field the contract names, with its arguments as the SDL prints them.
CONTRACT_FIELDS = [
    "product(id: ID!): Product",
    "products(first: Int = 20, after: String = null, search: String = null): ProductConnection!",
    "me: Customer",
    "startSession: GuestSession!",
    "register(email: String!, password: String!): AuthPayload!",
    "logout: Boolean!",
    "productCreate(input: ProductInput!): ProductPayload!",
    "productUpdate(id: ID!, input: ProductUpdateInput!): ProductPayload!",
    "stockAdjust(productId: ID!, delta: Int!): ProductPayload!",
]


class _DropDescriptions(Visitor):
    def enter(self, node: Node, *_: object) -> Node | None:
        if getattr(node, "description", None) is None:
            return None
        return dataclasses.replace(node, description=None)  # type: ignore[call-arg]


def signatures(sdl: str) -> str:
    """The SDL without descriptions: a field's arguments then print on one line, as the contract writes them."""
    return print_ast(visit(parse(sdl), _DropDescriptions()))


def test_exported_schema_matches_code() -> None:
    """schema/schema.graphql is regenerated with `make schema` whenever the code changes."""
    assert schema.sdl() == SDL_FILE.read_text(), "run `make schema` and commit schema/schema.graphql"


def test_contract_fields_are_served() -> None:
    """Each contract field exists with its contract signature."""
    sdl = signatures(schema.sdl())
    missing = [f for f in CONTRACT_FIELDS if f not in sdl]
    assert [] == missing
