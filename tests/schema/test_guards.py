"""Depth, alias and token limits; introspection as configured; no stack traces to clients."""

from __future__ import annotations

import httpx
import pytest

from schema import Limits, build_schema
from tests.api import Api, GraphQLErrors


def test_deep_query_is_refused() -> None:
    """A query nested deeper than the limit is refused before any resolver runs."""
    shallow = build_schema(Limits(max_depth=2))
    result = shallow.execute_sync("{ products { edges { node { id } } } }")
    assert result.errors and "exceeds maximum operation depth" in result.errors[0].message


async def test_many_aliases_are_refused(api: Api) -> None:
    """More aliases than the limit is an error, not sixteen product lookups."""
    query = "{ " + " ".join(f"p{i}: product(id: \"1\") {{ id }}" for i in range(16)) + " }"
    with pytest.raises(GraphQLErrors, match="aliases"):
        await api(query)


async def test_huge_documents_are_refused(api: Api) -> None:
    """A document over the token limit is refused."""
    query = "{ products { edges { node { " + " ".join(["id"] * 2100) + " } } } }"
    with pytest.raises(GraphQLErrors, match="token"):
        await api(query)


async def test_syntax_errors_say_where(stack) -> None:
    """A malformed query is a top-level error with a location, not a trace."""
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.graphql_url, json={"query": "{ products { "})
    error = response.json()["errors"][0]
    assert "Syntax Error" in error["message"] and error["locations"] == [{"line": 1, "column": 14}]


def test_introspection_can_be_switched_off() -> None:
    """With introspection off, __schema queries fail validation."""
    closed = build_schema(Limits(introspection=False))
    result = closed.execute_sync("{ __schema { queryType { name } } }")
    assert result.errors and "introspection" in result.errors[0].message.lower()


async def test_unexpected_errors_are_masked(stack) -> None:
    """A variable of the wrong type is a clear client error and carries no traceback."""
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.graphql_url, json={
            "query": "query($id: ID!) { product(id: $id) { id } }", "variables": {"id": {"x": 1}}})
    body = response.json()
    assert body["errors"] and "Traceback" not in response.text


async def test_subscriptions_over_http_get_a_clear_error(stack) -> None:
    """A subscription posted over HTTP says where subscriptions are served."""
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.graphql_url, json={
            "query": 'subscription { productStock(productId: "1") { available } }'})
    assert "served over WebSocket" in response.json()["errors"][0]["message"]
