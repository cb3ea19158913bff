"""Persisted operations: documents the server knows by id, parsed, validated and planned once.

`schema/operations.graphql` holds them. Each operation's id is "sha256:" + the SHA-256 of its
printed text (the operation, then the fragments it uses, sorted by name); `make schema` writes the
ids to `schema/operations.json` for clients. A request that names a `documentId` skips parsing
and validation, and runs from a plan (schema.compiled) when the operation allows one and no
schema extension would be skipped by it (schema.extension_policy).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import strawberry
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    Visitor,
    parse,
    print_ast,
    specified_rules,
    validate,
    visit,
)

from schema import Limits, guard_rules
from schema.compiled import CompiledOperation, compile_operation
from schema.direct_call import direct_call
from schema.extension_policy import ErrorMasking, error_masking, plan_blockers
from schema.strawberry_internals import graphql_schema

log = logging.getLogger("rushcart.persisted")

OPERATIONS_FILE = Path(__file__).with_name("operations.graphql")
MANIFEST_FILE = Path(__file__).with_name("operations.json")


class PersistedOperationError(Exception):
    """The operations file holds something the schema rejects; raised at start-up, never per request."""


@dataclass(frozen=True)
class PersistedOperation:
    id: str
    name: str
    text: str
    document: DocumentNode
    compiled: CompiledOperation | None


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: object) -> None:
        self.names.add(node.name.value)


def _fragments_used(node: OperationDefinitionNode | FragmentDefinitionNode,
                    fragments: dict[str, FragmentDefinitionNode]) -> Iterator[str]:
    seen: set[str] = set()
    todo = [node]
    while todo:
        spreads = _Spreads()
        visit(todo.pop(), spreads)
        for name in spreads.names - seen:
            if name not in fragments:
                raise PersistedOperationError(f"unknown fragment {name}")
            seen.add(name)
            todo.append(fragments[name])
    return iter(sorted(seen))


def split(source: str) -> list[tuple[str, str]]:
    """(name, text) of every operation in `source`, each text standing alone with its fragments."""
    document = parse(source)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    found = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.name is None:
            raise PersistedOperationError("every persisted operation needs a name")
        parts = [definition, *(fragments[n] for n in _fragments_used(definition, fragments))]
        found.append((definition.name.value, "\n\n".join(print_ast(part) for part in parts)))
    names = [name for name, _ in found]
    if len(set(names)) != len(names):
        raise PersistedOperationError("operation names must be unique")
    return found


def document_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def manifest(source: str | None = None) -> dict[str, str]:
    """Operation name -> id, as written to schema/operations.json."""
    text = OPERATIONS_FILE.read_text() if source is None else source
    return {name: document_id(op) for name, op in split(text)}


def manifest_json() -> str:
    return json.dumps(manifest(), indent=2, sort_keys=True) + "\n"


class PersistedOperations:
    def __init__(self, operations: dict[str, PersistedOperation], mask_errors: ErrorMasking) -> None:
        self._by_id = operations
        # A planned result's errors are masked as the schema's MaskErrors would mask them.
        self.mask_errors = mask_errors

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, document_id: str) -> PersistedOperation | None:
        return self._by_id.get(document_id)

    @classmethod
    def load(cls, schema: strawberry.Schema, limits: Limits, source: str | None = None,
             names: Collection[str] | None = None) -> PersistedOperations:
        """Every operation (or those `names`) validated with the rules a request would meet; an
        invalid one stops start-up."""
        text = OPERATIONS_FILE.read_text() if source is None else source
        target = graphql_schema(schema)
        rules = [*specified_rules, *guard_rules(limits)]
        blockers = plan_blockers(schema)
        if blockers:
            log.info("persisted operations run through Strawberry, not from plans: %s", "; ".join(blockers))
        operations = {}
        for name, op_text in split(text):
            if names is not None and name not in names:
                continue
            # The limits MaxTokensLimiter and AddValidationRules apply to a request's document.
            try:
                document = parse(op_text, max_tokens=limits.max_tokens)
            except GraphQLError as error:
                raise PersistedOperationError(f"{name}: {error.message}") from None
            errors = validate(target, document, rules)
            if errors:
                raise PersistedOperationError(f"{name}: {'; '.join(e.message for e in errors)}")
            compiled = None if blockers else compile_operation(
                target, document, schema.execution_context_class, lambda field: direct_call(schema, field),
            )
            op = PersistedOperation(document_id(op_text), name, op_text, document, compiled)
            operations[op.id] = op
        return cls(operations, error_masking(schema))
