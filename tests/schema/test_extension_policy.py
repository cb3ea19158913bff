"""Persisted operations are planned only when no schema extension would be skipped by the plan."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from db.errors import OutOfStock
from schema import Limits, build_schema
from schema.extension_policy import error_masking, plan_blockers
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


class MasksAndCounts(MaskErrors):
    pass


def test_a_subclass_of_a_reproduced_extension_turns_planning_off() -> None:
    """Only the exact classes in REPRODUCED are stood in for: a subclass may do more."""
    assert not _place_order_planned(MasksAndCounts)


@strawberry.type
class Failing:
    @strawberry.field
    def crash(self) -> str | None:
        raise RuntimeError("database password in here")

    @strawberry.field
    def refuse(self) -> str | None:
        raise GraphQLError("you may not")

    @strawberry.field
    def sold_out(self) -> str | None:
        raise OutOfStock()


def _only_runtime_errors(error: GraphQLError) -> bool:
    return isinstance(error.original_error, RuntimeError)


def _already_masked_by_first(error: GraphQLError) -> bool:
    # Tells the order the maskers run in: masked by "first" before this one runs, or not.
    return error.message == "first"


def test_planned_errors_are_masked_as_strawberry_masks_them() -> None:
    """error_masking gives what the schema's MaskErrors extensions give, each with its own rule and message."""
    maskers: list[Callable[[], SchemaExtension]] = [
        lambda: MaskErrors(should_mask_error=_only_runtime_errors, error_message="first"),
        lambda: MaskErrors(should_mask_error=_already_masked_by_first, error_message="second"),
    ]
    document = "{ crash refuse soldOut }"
    for installed in (maskers, maskers[::-1], maskers[:1], []):
        masking = strawberry.Schema(query=Failing, extensions=installed)
        expected = masking.execute_sync(document)
        unmasked = strawberry.Schema(query=Failing).execute_sync(document)
        assert expected.errors is not None and unmasked.errors is not None
        actual = error_masking(masking)(unmasked.errors)
        assert [e.formatted for e in expected.errors] == [e.formatted for e in actual]


def test_rushcarts_masking_hides_unexpected_errors_only() -> None:
    """With build_schema's extensions an unexpected error reads "Unexpected error."; domain errors keep theirs."""
    errors = [GraphQLError("x", original_error=RuntimeError("secret")), GraphQLError("y", original_error=OutOfStock())]
    assert ["Unexpected error.", "y"] == [e.message for e in error_masking(build_schema())(errors)]
