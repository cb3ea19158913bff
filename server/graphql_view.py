"""The GraphQL endpoint: Strawberry's ASGI view behind one boundary, plus persisted operations.

Every HTTP request to /graphql is read and checked here first (server.request_body,
server.graphql_http): a malformed one is answered with a 4xx and a JSON body and never reaches
Strawberry. A well-formed one goes on with its parameters already parsed:

- a `documentId` (see schema/operations.graphql) names an operation parsed, validated and, where
  possible, planned at start-up, so the request costs its resolvers and little else;
- everything else, and a persisted operation without a plan, runs through Strawberry.

Both answer in the same shape, with the same media type and status rules, error masking, logging
and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from resolvers.context import RequestContext
from schema.live import encode_message
from schema.persisted import PersistedOperation, PersistedOperations
from server.graphiql import render_page
from server.graphql_http import (
    GRAPHQL_RESPONSE_JSON,
    GraphQLParams,
    HTTPError,
    is_request_error,
    negotiate,
    params_from_body,
    params_from_query,
    require_json_body,
)
from server.request_body import RequestBodyError, read_body
from server.state import AppState

# Documents are capped at a few thousand tokens and variables are small; a body this large is
# refused while it is read rather than buffered whole.
MAX_BODY_BYTES = 1 << 20
# Where one request's parsed parameters and negotiated answer travel through Strawberry's hooks.
_EXCHANGE = "rushcart.graphql"


@dataclass
class _Exchange:
    params: GraphQLParams
    media_type: str
    sub_response: Response | None = None


class _ParsedRequest(StarletteRequestAdapter):
    """Strawberry's request adapter, carrying the parameters the boundary already parsed."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.exchange: _Exchange = request.scope[_EXCHANGE]


class GraphQLWSHandler(BaseGraphQLWSHandler[RequestContext, None]):
    """The legacy graphql-ws protocol, closing a connection that does not initialise in time as
    graphql-transport-ws does (same code and reason), so an idle socket cannot be held open."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """The graphql-transport-ws protocol, tolerating a client's `complete` that crosses the server's
    own end of the same operation (a status stream reaching PAID as its subscriber leaves)."""

    def forget_id(self, id: str) -> None:
        # Strawberry deletes the id unconditionally; when the client's `complete` already removed
        # it, the KeyError escaped in the operation's task and logged a traceback per socket.
        self.operations.pop(id, None)


class RushcartGraphQL(GraphQL[RequestContext, None]):
    persisted: PersistedOperations | None = None
    request_adapter_class = _ParsedRequest
    graphql_ws_handler_class = GraphQLWSHandler
    graphql_transport_ws_handler_class = GraphQLTransportWSHandler

    def encode_json(self, data: object) -> str | bytes:
        # A subscription event shared by many subscribers is encoded once (schema.live).
        if type(data) is dict and "payload" in data:
            encoded = encode_message(data)
            if encoded is not None:
                return encoded
        return super().encode_json(data)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        media_type = negotiate(request.headers.get("accept"))
        try:
            response = await self._answer(request, receive, media_type)
        except HTTPError as exc:
            response = exc.response(media_type)
        except HTTPException as exc:  # Strawberry's own refusals, as JSON like ours
            response = HTTPError(exc.status_code, exc.reason).response(media_type)
        await response(scope, receive, send)

    async def _answer(self, request: Request, receive: Receive, media_type: str) -> Response:
        if request.method == "GET":
            if self.graphql_ide and self.should_render_graphql_ide(StarletteRequestAdapter(request)):
                return await self.render_graphql_ide(request)
            params = params_from_query(request.query_params)
        elif request.method == "POST":
            require_json_body(request.headers)
            try:
                body = await read_body(receive, MAX_BODY_BYTES)
            except RequestBodyError as exc:
                raise HTTPError.from_body_error(exc) from None
            params = params_from_body(body)
        else:
            raise HTTPError(405, f"{request.method} is not supported; send GraphQL requests by GET or POST",
                            "METHOD_NOT_ALLOWED", headers={"Allow": "GET, POST"})
        if params.document_id is not None:
            operation = self._operation(params.document_id, params.operation_name)
            if operation.compiled is not None:
                request.scope[_EXCHANGE] = _Exchange(params, media_type)
                return await self._run_planned(request, operation, params.variables)
            # No plan: Strawberry runs the stored text (its parser and validation caches hit).
            params = replace(params, query=operation.text, document_id=None, operation_name=operation.name)
        request.scope[_EXCHANGE] = _Exchange(params, media_type)
        return await self.run(request)

    async def render_graphql_ide(self, request: Request) -> Response:
        return render_page(request)

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        assert isinstance(request, _ParsedRequest)
        params = request.exchange.params
        return GraphQLRequestData(query=params.query, variables=params.variables,
                                  operation_name=params.operation_name, extensions=params.extensions)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        exchange: _Exchange | None = request.scope.get(_EXCHANGE)
        if exchange is not None:
            exchange.sub_response = sub_response
            # Not a header yet (the sub-response has no body); create_response reads it.
            sub_response.media_type = exchange.media_type
        return sub_response

    async def get_context(self, request: Request | WebSocket, response: Response | None) -> RequestContext:  # type: ignore[override]
        state: AppState = request.app.state.rushcart
        websocket = isinstance(request, WebSocket)
        if not websocket:
            state.events.note_request()  # the fan-out leaves room for it (db.events)
        return RequestContext(
            state,
            headers=request.headers,
            cookies=request.cookies,
            response=response,
            websocket=websocket,
            client=request.client.host if request.client else None,
        )

    async def execute_single(self, request: Request, request_adapter: AsyncHTTPRequestAdapter,
                             sub_response: Response, context: RequestContext, root_value: None,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        try:
            return await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                request_data)
        except HTTPException as exc:
            refused = exc.__cause__
            if isinstance(refused, InvalidOperationTypeError) and refused.operation_type == OperationType.MUTATION:
                # GET must not change anything (the spec: 405 and where to send it instead).
                raise HTTPError(405, "mutations are sent by POST, not GET", "METHOD_NOT_ALLOWED",
                                headers={"Allow": "POST"}) from None
            raise

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        answer = await super().process_result(request, result)
        exchange: _Exchange | None = request.scope.get(_EXCHANGE)
        if exchange is None:
            return answer
        if exchange.media_type == GRAPHQL_RESPONSE_JSON and is_request_error(result.data, result.errors):
            # Nothing ran: the spec's answer for this media type is a 4xx without a `data` entry.
            answer.pop("data", None)
            if exchange.sub_response is not None:
                exchange.sub_response.status_code = 400
        return answer

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.media_type == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON
        return response

    def _operation(self, document_id: str, operation_name: str | None) -> PersistedOperation:
        operation = self.persisted.get(document_id) if self.persisted is not None else None
        if operation is None:
            raise HTTPError(400, f"unknown documentId {document_id[:80]!r}; the server's persisted operations "
                            "are listed in schema/operations.json", "PERSISTED_DOCUMENT_NOT_FOUND")
        if operation_name is not None and operation_name != operation.name:
            raise HTTPError(400, f"operationName {operation_name[:80]!r} does not match the document's "
                            f"{operation.name!r}")
        return operation

    async def _run_planned(self, request: Request, operation: PersistedOperation,
                           variables: dict[str, Any] | None) -> Response:
        assert operation.compiled is not None and self.persisted is not None
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        result = await operation.compiled.execute(context, variables)
        errors = result.errors or None
        if errors:
            # Logged as Strawberry logs them, before masking, so the log keeps what the client doesn't see.
            self.schema.process_errors(errors)
            errors = self.persisted.mask_errors(errors)
        answer = await self.process_result(request, ExecutionResult(data=result.data, errors=errors))
        return self.create_response(answer, sub_response)


__all__ = ["MAX_BODY_BYTES", "RushcartGraphQL"]
