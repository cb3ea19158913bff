"""Persisted operations are planned only when no schema extension would be skipped by the plan."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from schema import Limits, build_schema
from schema.extension_policy import plan_blockers
from schema.persisted import PersistedOperations, manifest

IDS = manifest()


class AuditsExecution(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        yield


class TimesParsing(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield


class ChangesNothing(SchemaExtension):
    pass


def _place_order_planned(*extra: Callable[[], SchemaExtension]) -> bool:
    schema = build_schema(Limits(), extra_extensions=extra)
    operation = PersistedOperations.load(schema, Limits()).get(IDS["PlaceOrder"])
    assert operation is not None
    return operation.compiled is not None


def test_rushcarts_own_extensions_leave_the_buying_path_planned() -> None:
    """With the extensions build_schema installs, nothing blocks planning and PlaceOrder has a plan."""
    assert plan_blockers(build_schema()) == []
    assert _place_order_planned()


def test_an_extension_hooking_execution_turns_planning_off_and_is_named() -> None:
    """An on_execute extension (tracing, auditing) makes PlaceOrder run through Strawberry instead."""
    schema = build_schema(extra_extensions=[AuditsExecution])
    assert plan_blockers(schema) == [f"{__name__}.AuditsExecution overrides on_execute"]
    assert not _place_order_planned(AuditsExecution)


def test_extensions_without_execution_hooks_keep_planning_on() -> None:
    """An extension that hooks only parsing, or nothing, changes nothing a plan skips."""
    assert _place_order_planned(TimesParsing, ChangesNothing)


def test_error_masking_other_than_rushcarts_turns_planning_off() -> None:
    """A second MaskErrors with its own rule would not be reproduced by the planned path, so it blocks."""
    def mask_everything(error: GraphQLError) -> bool:
        return True

    assert not _place_order_planned(lambda: MaskErrors(should_mask_error=mask_everything))
