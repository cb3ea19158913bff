"""GraphQL over HTTP: what a request asks for, which media type answers it, and the status codes.

Follows the GraphQL-over-HTTP spec (graphql.github.io/graphql-over-http):

- A client that accepts `application/graphql-response+json` (and prefers it to `application/json`)
  gets that type: a request error (the document does not parse or validate, the variables do not
  coerce) is a 400 without a `data` entry; an executed operation is a 200 whatever its errors.
- Everyone else (`application/json`, `*/*`, no Accept header, or a type the server does not offer)
  gets `application/json` and a 200 for anything that reached the GraphQL engine, as always.
- A request the server cannot take at all (not JSON, parameters of the wrong type, a mutation over
  GET) is a 4xx in either type, with a JSON body `{"errors": [{"message", "extensions": {"code"}}]}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from server.request_body import RequestBodyError, parse_json_object

__all__ = [
    "GRAPHQL_RESPONSE_JSON",
    "JSON",
    "GraphQLParams",
    "HTTPError",
    "is_request_error",
    "negotiate",
    "params_from_body",
    "params_from_query",
    "require_json_body",
]

JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


class HTTPError(Exception):
    """A request `/graphql` answers before (or instead of) executing anything."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r}, code={self.code!r})"

    def response(self, media_type: str) -> Response:
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        return JSONResponse(body, status_code=self.status, headers=self.headers, media_type=media_type)

    @classmethod
    def from_body_error(cls, error: RequestBodyError) -> HTTPError:
        return cls(error.status, error.message, "PAYLOAD_TOO_LARGE" if error.status == 413 else "BAD_REQUEST")


@dataclass(frozen=True)
class GraphQLParams:
    """One request's parameters, each of the type the spec gives it; exactly one of query and document_id."""

    query: str | None
    document_id: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _params(doc: Mapping[str, Any]) -> GraphQLParams:
    query, document_id = doc.get("query"), doc.get("documentId")
    variables, operation_name, extensions = doc.get("variables"), doc.get("operationName"), doc.get("extensions")
    if query is not None and document_id is not None:
        raise HTTPError(400, "send either `query` or `documentId`, not both")
    if document_id is not None and not isinstance(document_id, str):
        raise HTTPError(400, "`documentId` must be a string")
    if query is None and document_id is None:
        raise HTTPError(400, "the request has no `query` (a GraphQL document) and no `documentId`")
    if query is not None and not isinstance(query, str):
        raise HTTPError(400, "`query` must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise HTTPError(400, "`variables` must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise HTTPError(400, "`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise HTTPError(400, "`extensions` must be a JSON object")
    return GraphQLParams(query, document_id, variables, operation_name, extensions)


def require_json_body(headers: Headers) -> None:
    """A POST body must be declared `application/json` (UTF-8): what the spec asks of clients, and
    what a cross-site HTML form cannot send without a CORS preflight."""
    declared = headers.get("content-type")
    if declared is None:
        raise HTTPError(415, "send the request as `Content-Type: application/json`", "UNSUPPORTED_MEDIA_TYPE")
    media_type, _, parameters = declared.partition(";")
    if media_type.strip().lower() != JSON:
        raise HTTPError(415, f"unsupported Content-Type {media_type.strip()[:80]!r}; send application/json",
                        "UNSUPPORTED_MEDIA_TYPE")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise HTTPError(415, "the request body must be UTF-8", "UNSUPPORTED_MEDIA_TYPE")


def params_from_body(body: bytes) -> GraphQLParams:
    """A POST body's parameters; HTTPError 400 for any malformed body."""
    try:
        doc = parse_json_object(body)
    except RequestBodyError as exc:
        raise HTTPError.from_body_error(exc) from None
    return _params(doc)


def params_from_query(query_params: Mapping[str, str]) -> GraphQLParams:
    """A GET request's parameters: `variables` and `extensions` arrive as JSON text."""
    doc: dict[str, Any] = {name: query_params.get(name) for name in ("query", "operationName")}
    if "documentId" in query_params:
        raise HTTPError(400, "persisted operations (`documentId`) are sent by POST")
    for name in ("variables", "extensions"):
        raw = query_params.get(name)
        if raw:
            try:
                doc[name] = parse_json_object(raw.encode())
            except RequestBodyError as exc:
                raise HTTPError(400, f"`{name}` must be a JSON object ({exc.message.removeprefix('the ')})") from None
    return _params(doc)


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for item in accept.split(","):
        media_type, *parameters = item.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if media_type.strip():
            ranges.append((media_type.strip().lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str:
    """The media type of the answer: `application/graphql-response+json` when the client prefers it,
    else `application/json` (also for no Accept header, `*/*`, or only types the server lacks)."""
    if not accept or GRAPHQL_RESPONSE_JSON not in accept.lower():
        return JSON
    best, best_quality = JSON, 0.0
    for media_type, quality in _media_ranges(accept):
        offered = {GRAPHQL_RESPONSE_JSON: GRAPHQL_RESPONSE_JSON, JSON: JSON, "application/*": JSON, "*/*": JSON}
        # The first of equally weighted types wins: the client listed it first.
        if media_type in offered and quality > best_quality:
            best, best_quality = offered[media_type], quality
    return best


def is_request_error(data: Any, errors: Sequence[GraphQLError] | None) -> bool:
    """True when nothing was executed: the document did not parse or validate, or the variables did
    not coerce. Such errors carry no path; an error raised by a field always has one."""
    return data is None and bool(errors) and all(error.path is None for error in errors or ())
