"""GraphQL over HTTP with gql, as a storefront would call it."""

from __future__ import annotations

from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport


class GraphQLErrors(Exception):
    """Top-level GraphQL errors (malformed requests, guards)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e.get("message")) for e in errors))


class Api:
    def __init__(self, url: str, *, token: str | None = None, session_id: str | None = None) -> None:
        self.url = url
        self.token = token
        self.session_id = session_id

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session_id:
            headers["X-Session-Id"] = self.session_id
        return headers

    def as_(self, *, token: str | None = None, session_id: str | None = None) -> Api:
        return Api(self.url, token=token, session_id=session_id)

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        transport = HTTPXAsyncTransport(url=self.url, headers=self.headers(), timeout=60)
        # gql's own 10 s default would fail a burst test on a loaded 2-core machine before the server could.
        client = Client(transport=transport, execute_timeout=60)
        try:
            result = await client.execute_async(GraphQLRequest(query, variable_values=variables or None))
        except TransportQueryError as exc:
            raise GraphQLErrors(list(exc.errors or [])) from None
        return dict(result)

    # Conveniences used across suites.
    async def register(self, email: str, password: str = "correct horse battery") -> Api:
        data = await self(
            "mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
            "{ token errors { code message } } }",
            e=email,
            p=password,
        )
        assert data["register"]["errors"] == [], data
        return self.as_(token=data["register"]["token"], session_id=self.session_id)

    async def login(self, email: str, password: str = "correct horse battery") -> Api:
        data = await self(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
            "{ token errors { code message } } }",
            e=email,
            p=password,
        )
        assert data["login"]["errors"] == [], data
        return self.as_(token=data["login"]["token"], session_id=self.session_id)

    async def start_session(self) -> Api:
        data = await self("mutation { startSession { sessionId } }")
        return self.as_(token=self.token, session_id=data["startSession"]["sessionId"])
