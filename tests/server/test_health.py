"""Health endpoints and the plain HTTP surface."""

from __future__ import annotations

import httpx

from tests.stack import Stack


async def test_healthz_answers_ok(stack: Stack) -> None:
    """GET /healthz says the process is up."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.base_url}/healthz")
    assert (200, {"status": "ok"}) == (response.status_code, response.json())


async def test_readyz_checks_postgres_and_redis(stack: Stack) -> None:
    """GET /readyz is 200 only when PostgreSQL and Redis both answer."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.base_url}/readyz")
    assert (200, "ok") == (response.status_code, response.json()["status"])


async def test_malformed_json_is_a_client_error_without_a_trace(stack: Stack) -> None:
    """A body that is not JSON gets a 4xx with a message, never a stack trace."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            stack.graphql_url, content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert 400 == response.status_code
    assert "Traceback" not in response.text
