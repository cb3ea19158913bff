"""Deadlines for slow clients: a request's headers and its body must arrive in bounded time.

uvicorn bounds only the idle time between requests on a kept-alive connection
(`timeout_keep_alive`); a client that opens a connection and sends nothing, or half a request
line, or headers and then a body that never comes, holds a connection (and, for the body, a
running request) for as long as it likes. Two pieces close that:

- `HeaderDeadlineProtocol`, uvicorn's httptools protocol with a timer from the moment the server
  waits for a request (a new connection, or the end of the previous response) until the request's
  headers are complete: when it fires the server answers 408 and closes the connection.
  `REQUEST_HEADER_TIMEOUT_SECONDS`, 10 by default. (uvicorn calls the hooks it overrides for every
  request; `tests/server/test_slow_clients.py` fails if a uvicorn release changes that.)
- `BodyDeadline`, an ASGI middleware: the whole body must have arrived within
  `REQUEST_BODY_TIMEOUT_SECONDS` (10 by default) of the headers, else the answer is a 408 with a
  JSON body and the connection is closed. A total deadline, not an idle one, so a body trickled a
  byte at a time is cut off as surely as one that stops.

The reverse proxy in front of the API (deploy/nginx.conf) has the same bounds, so a stalled
client is stopped there first; these keep the API safe when it is reached directly.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.graphql_http import negotiate
from server.settings import Settings

__all__ = ["BodyDeadline", "BodyTimeoutError", "HeaderDeadlineProtocol"]

_WEBHOOK_PREFIX = "/webhooks/"


class BodyTimeoutError(Exception):
    """The request's body did not arrive within its deadline."""


def _error_body(path: str, message: str) -> bytes:
    # The webhook answers errors as API.md says ({"error": ...}); every other route as /graphql does.
    if path.startswith(_WEBHOOK_PREFIX):
        return json.dumps({"error": message}).encode()
    return json.dumps({"errors": [{"message": message, "extensions": {"code": "REQUEST_TIMEOUT"}}]}).encode()


class BodyDeadline:
    """Answers 408 (JSON) when a request's body is not complete `seconds` after its headers."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_done = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                # Past the body only `http.disconnect` can come, and waiting for it is not the client's stall.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyTimeoutError:
            if response_started:
                raise
            await self._answer_timeout(scope, send)

    async def _answer_timeout(self, scope: Scope, send: Send) -> None:
        path: str = scope.get("path", "")
        body = _error_body(path, f"the request body did not arrive within {self.seconds:g} seconds")
        media_type = "application/json" if path.startswith(_WEBHOOK_PREFIX) else negotiate(
            Headers(scope=scope).get("accept"))
        await send({
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", media_type.encode()),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body may still come; the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


@functools.cache
def _header_timeout() -> float:
    # Read once per process: uvicorn builds a protocol per connection, each worker process its own.
    return float(Settings.from_env().request_header_timeout_seconds)


_HEADER_TIMEOUT_BODY = _error_body("/", "the request's headers did not arrive in time")
_HEADER_TIMEOUT_RESPONSE = b"".join([
    b"HTTP/1.1 408 Request Timeout\r\n",
    b"content-type: application/json\r\n",
    b"content-length: " + str(len(_HEADER_TIMEOUT_BODY)).encode() + b"\r\n",
    b"connection: close\r\n",
    b"\r\n",
    _HEADER_TIMEOUT_BODY,
])


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers take too long."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(_header_timeout(), self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        # Only between requests: nothing of ours is on the wire then, so the 408 interleaves no response.
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.transport.write(_HEADER_TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # else uvicorn starts the next request, its headers already read
        super().on_response_complete()
        # The next request's headers get the same deadline (uvicorn's keep-alive timer stops at its first byte).
        if waiting and not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)
