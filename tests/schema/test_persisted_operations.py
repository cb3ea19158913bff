"""The persisted operations file: valid against the schema, ids published, the buying path planned."""

from __future__ import annotations

import pytest

import schema
from schema import Limits
from schema.persisted import (
    MANIFEST_FILE,
    PersistedOperationError,
    PersistedOperations,
    document_id,
    manifest,
    manifest_json,
    split,
)


def test_manifest_is_current() -> None:
    """schema/operations.json is what clients read the ids from; `make schema` rewrites it."""
    assert manifest_json() == MANIFEST_FILE.read_text(), "run `make schema` and commit schema/operations.json"


def test_every_operation_loads_and_the_buying_path_is_planned() -> None:
    operations = PersistedOperations.load(schema.build_schema(), Limits())
    ids = manifest()
    assert len(operations) == len(ids)
    for name in ("PlaceOrder", "Checkout", "CancelOrder", "OrderStatus"):
        operation = operations.get(ids[name])
        assert operation is not None and operation.compiled is not None, name
    # Product.available has a resolver: such operations run through Strawberry instead.
    product = operations.get(ids["ProductAvailability"])
    assert product is not None and product.compiled is None


def test_id_is_the_hash_of_the_operation_with_its_fragments() -> None:
    source = ("fragment B on Product { name }\nfragment A on Product { id ...B }\n"
              "query P($id: ID!) { product(id: $id) { ...A } }")
    [(name, text)] = split(source)
    assert name == "P"
    assert text.index("query P") < text.index("fragment A") < text.index("fragment B")
    assert manifest(source) == {"P": document_id(text)}


def test_an_invalid_operation_stops_start_up() -> None:
    with pytest.raises(PersistedOperationError, match="Broken"):
        PersistedOperations.load(schema.build_schema(), Limits(), source="query Broken { noSuchField }")


def test_operations_too_deep_for_the_guards_are_refused() -> None:
    deep = "query Deep { orders { edges { node { lines { product { id } } } } } }"
    with pytest.raises(PersistedOperationError, match="Deep"):
        PersistedOperations.load(schema.build_schema(), Limits(max_depth=3), source=deep)


def test_unnamed_operations_are_refused() -> None:
    with pytest.raises(PersistedOperationError, match="name"):
        split("{ me { id } }")


def test_operations_over_the_token_limit_are_refused() -> None:
    """MAX_TOKENS applies to persisted operations as to any document: one too long stops start-up."""
    with pytest.raises(PersistedOperationError, match="more than 50 tokens"):
        PersistedOperations.load(schema.build_schema(Limits(max_tokens=50)), Limits(max_tokens=50))
