"""The GraphQL schema: types, inputs, payloads, and the assembled `Schema` with its guards."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import strawberry
from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType
from strawberry.utils.logging import StrawberryLogger

from db.errors import RushcartError
from schema.errors import is_refusal
from schema.live import LiveExecutor
from schema.mutation import Mutation
from schema.query import Query
from schema.scalars import SCALARS
from schema.subscription import Subscription

__all__ = ["Limits", "RushcartSchema", "SubscriptionsOverWebSocket", "build_schema", "guard_rules", "sdl"]

log = logging.getLogger("rushcart.graphql")


@dataclass(frozen=True)
class Limits:
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    introspection: bool = True


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent over plain HTTP gets a clear error instead of a null-field failure."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if (
            self.execution_context.operation_type == OperationType.SUBSCRIPTION
            and not getattr(context, "websocket", True)
        ):
            raise GraphQLError(
                "subscriptions are served over WebSocket on /graphql (graphql-transport-ws or graphql-ws)"
            )
        yield


def _should_mask(error: GraphQLError) -> bool:
    # Domain errors carry messages written for clients; anything else may leak internals.
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, RushcartError))


class RushcartSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """An expected refusal (a subscription to someone else's order, say) is one line in the log;
        anything else is logged with its traceback, as Strawberry does."""
        for error in errors:
            if is_refusal(error):
                log.info("refused: %s (%s)", error.message, (error.extensions or {}).get("code"))
            else:
                StrawberryLogger.error(error, execution_context)


def guard_rules(limits: Limits) -> list[type[ASTValidationRule]]:
    """The validation rules beyond the spec's: depth, aliases, and introspection if it is off."""
    rules: list[type[ASTValidationRule]] = [depth_rule(limits.max_depth, None), alias_rule(limits.max_aliases)]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(
    limits: Limits = Limits(), extra_extensions: Sequence[Callable[[], SchemaExtension]] = ()
) -> strawberry.Schema:
    # Rule classes are made once: ValidationCache keys on them, so per-request classes would
    # never hit the cache. Extensions themselves are factories, one instance per request.
    rules = guard_rules(limits)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        SubscriptionsOverWebSocket,
        lambda: AddValidationRules(rules),
        # Parsing and validating a document is most of a request's CPU; both are pure, so cache them.
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        lambda: MaskErrors(should_mask_error=_should_mask),
        *extra_extensions,
    ]
    return RushcartSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
        execution_context_class=LiveExecutor,
    )


def sdl() -> str:
    return build_schema().as_str() + "\n"
