"""The exported schema file is what the server serves, and it keeps the contract of API.md."""

from __future__ import annotations

from pathlib import Path

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


def test_exported_schema_matches_code() -> None:
    """schema/schema.graphql is regenerated with `make schema` whenever the code changes."""
    assert schema.sdl() == SDL_FILE.read_text(), "run `make schema` and commit schema/schema.graphql"


def test_contract_fields_are_served() -> None:
    """Each contract field exists with its contract signature."""
    sdl = schema.sdl()
    missing = [f for f in CONTRACT_FIELDS if f not in sdl]
    assert [] == missing
