"""The GraphQL endpoint: Strawberry's ASGI view, plus persisted operations sent by `documentId`.

A POST whose JSON body names a `documentId` (see schema/operations.graphql) is answered here:
the operation was parsed, validated and, where possible, planned at start-up, so the request
costs its resolvers and little else. Everything else, and a persisted operation without a plan,
goes through Strawberry as usual. Both answer in the same shape, with the same error masking,
logging and metrics.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import process_result
from strawberry.types import ExecutionResult

from resolvers.context import RequestContext
from schema.persisted import PersistedOperation, PersistedOperations
from server.state import AppState

# GraphiQL sends its headers editor's content over HTTP only; this makes its WebSocket send the
# same headers as connection_init payload, so a signed-in subscription works from the explorer.
_GRAPHIQL_WS_AUTH = """subscriptionUrl,
        wsConnectionParams: () => {
          try { return JSON.parse(localStorage.getItem("graphiql:headers") || "{}"); } catch (e) { return {}; }
        },"""

# Cheap test before parsing: an ordinary request must not pay for a second JSON parse.
_DOCUMENT_ID = b'"documentId"'
# Documents are capped at a few thousand tokens and variables are small; a body this large is
# refused while it is read rather than buffered whole.
MAX_BODY_BYTES = 1 << 20


class BadRequest(Exception):
    def __init__(self, message: str, code: str = "BAD_REQUEST", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def _request_error(exc: BadRequest) -> Response:
    return JSONResponse({"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
                        status_code=exc.status)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES} bytes", "PAYLOAD_TOO_LARGE", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands `body` over once, then waits on the real one (for the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(scope: Scope) -> bool:
    # As Strawberry requires for any POST: a cross-site form can send text/plain without a
    # preflight, never application/json.
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _persisted_request(body: bytes) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """What a persisted request asks for; None if the body is not one (Strawberry answers it)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "documentId" not in doc:
        return None
    document_id, variables, operation_name = doc.get("documentId"), doc.get("variables"), doc.get("operationName")
    if doc.get("query") is not None:
        raise BadRequest("send either `query` or `documentId`, not both")
    if not isinstance(document_id, str):
        raise BadRequest("`documentId` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("`operationName` must be a string")
    return document_id, variables, operation_name


class RushcartGraphQL(GraphQL[RequestContext, None]):
    persisted: PersistedOperations | None = None

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self.graphql_ide_html.replace("subscriptionUrl,\n", _GRAPHIQL_WS_AUTH + "\n", 1))

    async def get_context(self, request: Request | WebSocket, response: Response | None) -> RequestContext:  # type: ignore[override]
        state: AppState = request.app.state.rushcart
        return RequestContext(
            state,
            headers=request.headers,
            cookies=request.cookies,
            response=response,
            websocket=isinstance(request, WebSocket),
            client=request.client.host if request.client else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.persisted is None:
            await super().__call__(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            found = self._persisted(scope, body)
        except BadRequest as exc:
            await _request_error(exc)(scope, receive, send)
            return
        if found is not None:
            operation, variables = found
            if operation.compiled is not None:
                response = await self._run_planned(Request(scope, receive), operation, variables)
                await response(scope, receive, send)
                return
            # No plan: Strawberry runs the stored text (its parser and validation caches hit).
            body = json.dumps({"query": operation.text, "variables": variables,
                               "operationName": operation.name}).encode()
        await super().__call__(scope, _replay(body, receive), send)

    def _persisted(self, scope: Scope, body: bytes) -> tuple[PersistedOperation, dict[str, Any] | None] | None:
        """The persisted operation a JSON body names, with its variables; None for any other body."""
        if _DOCUMENT_ID not in body or not _is_json(scope):
            return None
        asked = _persisted_request(body)
        if asked is None:
            return None
        document_id, variables, operation_name = asked
        return self._operation(document_id, operation_name), variables

    def _operation(self, document_id: str, operation_name: str | None) -> PersistedOperation:
        assert self.persisted is not None
        operation = self.persisted.get(document_id)
        if operation is None:
            raise BadRequest(f"unknown documentId {document_id[:80]!r}; the server's persisted operations "
                             "are listed in schema/operations.json", code="PERSISTED_DOCUMENT_NOT_FOUND")
        if operation_name is not None and operation_name != operation.name:
            raise BadRequest(f"operationName {operation_name[:80]!r} does not match the document's "
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
        return self.create_response(process_result(ExecutionResult(data=result.data, errors=errors)), sub_response)
