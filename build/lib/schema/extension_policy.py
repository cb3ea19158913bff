"""Which schema extensions a planned operation may run without.

A plan (schema.compiled) answers a persisted operation without Strawberry's execute, so no
extension hook runs for it. That is right only where skipping a hook changes nothing:

- `on_parse` and `on_validate`: a persisted document is parsed and validated once, at start-up,
  with the same token limit and guard rules a request meets (schema.persisted), never per request;
- `on_stream_result`: a plan holds no directives, so no `@defer` / `@stream`, and answers one result;
- the extensions rushcart installs itself (schema.build_schema), listed in REPRODUCED with how the
  planned path has the same effect.

Any other extension whose class overrides a hook that runs while executing (`on_operation`,
`on_execute`, `resolve`, `get_results`, or a hook a later Strawberry adds) turns planning off for
the whole schema: persisted operations then run through Strawberry from their stored text, with
the same answers, and the extension runs for every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from schema import SubscriptionsOverWebSocket

__all__ = [
    "REPRODUCED",
    "SKIPPABLE_HOOKS",
    "ErrorMasking",
    "Reproduced",
    "error_masking",
    "execution_hooks",
    "extension_hooks",
    "overridden_hooks",
    "plan_blockers",
]

SKIPPABLE_HOOKS = frozenset({"on_parse", "on_validate", "on_stream_result"})


def extension_hooks() -> frozenset[str]:
    """Every hook a schema extension can override, as the installed Strawberry defines them."""
    return frozenset(name for name, value in vars(SchemaExtension).items()
                     if not name.startswith("_") and callable(value))


def execution_hooks() -> frozenset[str]:
    # Derived rather than listed: a hook a later Strawberry adds turns planning off until classified.
    return extension_hooks() - SKIPPABLE_HOOKS


def overridden_hooks(cls: type[SchemaExtension]) -> frozenset[str]:
    return frozenset(name for name in extension_hooks() if getattr(cls, name) is not getattr(SchemaExtension, name))


@dataclass(frozen=True)
class Reproduced:
    """An extension class whose effect the planned path has without running its hooks."""

    hooks: frozenset[str]  # what the class overrides in the pinned Strawberry; anything more is unknown
    how: str


REPRODUCED: dict[type[SchemaExtension], Reproduced] = {
    MaxTokensLimiter: Reproduced(frozenset({"on_operation"}),
                                 "sets the parser's token limit: persisted documents are parsed at start-up with "
                                 "the same limit (Limits.max_tokens)"),
    AddValidationRules: Reproduced(frozenset({"on_operation"}),
                                   "adds the guard rules to validation: persisted documents are validated at "
                                   "start-up with the same rules (schema.guard_rules)"),
    ParserCache: Reproduced(frozenset({"on_parse"}), "caches parsing, which a persisted document skips"),
    ValidationCache: Reproduced(frozenset({"on_validate"}), "caches validation, which a persisted document skips"),
    SubscriptionsOverWebSocket: Reproduced(frozenset({"on_execute"}),
                                           "refuses subscriptions over HTTP: subscriptions are never planned"),
    MaskErrors: Reproduced(frozenset({"on_operation", "on_stream_result"}),
                           "masks unexpected errors: the planned path passes its errors through error_masking, "
                           "each instance's own rule and message"),
}


def plan_blockers(schema: strawberry.Schema) -> list[str]:
    """Why this schema's persisted operations must not be planned; empty if they may be."""
    blockers = []
    execution = execution_hooks()
    for extension in schema.get_extensions():
        cls = type(extension)
        hooks = overridden_hooks(cls) & execution
        known = REPRODUCED.get(cls)
        if known is not None and hooks <= known.hooks:
            continue
        if hooks:
            blockers.append(f"{cls.__module__}.{cls.__qualname__} overrides {', '.join(sorted(hooks))}")
    return blockers


ErrorMasking = Callable[[list[GraphQLError]], list[GraphQLError]]


def error_masking(schema: strawberry.Schema) -> ErrorMasking:
    """What the schema's MaskErrors extensions make of an operation's errors, for a planned result."""
    # Strawberry leaves on_operation hooks through an exit stack: the last installed masks first.
    maskers = [e for e in reversed(schema.get_extensions()) if type(e) is MaskErrors]

    def mask(errors: list[GraphQLError]) -> list[GraphQLError]:
        for masker in maskers:
            errors = [masker.anonymise_error(e) if masker.should_mask_error(e) else e for e in errors]
        return errors

    return mask
