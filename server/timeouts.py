"""Deadlines for slow clients: a request's headers and its body must arrive in bounded time.

uvicorn bounds only the idle time between requests on a kept-alive connection
(`timeout_keep_alive`); a client that opens a connection and sends nothing, or half a request
line, or headers and then a body that never comes, holds a connection (and, for the body, a
running request) for as long as it likes. Two pieces close that:

`DeadlineProtocol` is uvicorn's httptools protocol with one deadline per request:
- for its headers (`REQUEST_HEADER_TIMEOUT_SECONDS`, 10 by default), from the moment a new
  connection opens, or from the first read of a later request on a kept-alive connection (until
  then uvicorn's keep-alive timer closes an idle connection): when it fires the server answers 408
  and closes the connection;
- then for its whole body (`REQUEST_BODY_TIMEOUT_SECONDS`, 10 by default), from the end of the
  read that left it unfinished: else a 408 with a JSON body (the route's error shape, the
  negotiated media type) and the connection is closed. A total deadline, not an idle one, so a
  body trickled a byte at a time is cut off as surely as one that stops.
A request that arrives whole in one read, the usual case, arms no timer.
(uvicorn calls the hooks it overrides for every request; `tests/server/test_slow_clients.py`
fails if a uvicorn release changes that.)

The reverse proxy in front of the API (deploy/nginx.conf) has the same bounds, so a stalled
client is stopped there first; these keep the API safe when it is reached directly.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from starlette.datastructures import Headers
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.graphql_http import negotiate
from server.settings import Settings

__all__ = ["DeadlineProtocol"]

_WEBHOOK_PREFIX = "/webhooks/"


def _error_body(path: str, message: str) -> bytes:
    # The webhook answers errors as API.md says ({"error": ...}); every other route as /graphql does.
    if path.startswith(_WEBHOOK_PREFIX):
        return json.dumps({"error": message}).encode()
    return json.dumps({"errors": [{"message": message, "extensions": {"code": "REQUEST_TIMEOUT"}}]}).encode()


@functools.cache
def _timeouts() -> tuple[float, float]:
    # Read once per process: uvicorn builds a protocol per connection, each worker process its own.
    settings = Settings.from_env()
    return float(settings.request_header_timeout_seconds), float(settings.request_body_timeout_seconds)


_HEADER_TIMEOUT_BODY = _error_body("/", "the request's headers did not arrive in time")
_HEADER_TIMEOUT_RESPONSE = b"".join([
    b"HTTP/1.1 408 Request Timeout\r\n",
    b"content-type: application/json\r\n",
    b"content-length: " + str(len(_HEADER_TIMEOUT_BODY)).encode() + b"\r\n",
    b"connection: close\r\n",
    b"\r\n",
    _HEADER_TIMEOUT_BODY,
])


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with one timer per request: first for its headers, then for its
    whole body. A timer is armed only when a read leaves a request unfinished, so the usual request
    (headers and body in one read, on a kept-alive connection) pays for no timer at all; kept in
    the protocol rather than in an ASGI middleware so nothing is paid per `receive` either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._in_body = False

    def _arm(self, seconds: float, on_expiry: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, on_expiry)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_timed_out(self) -> None:
        self._deadline = None
        # Only between requests: nothing of ours is on the wire then, so the 408 interleaves no response.
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.transport.write(_HEADER_TIMEOUT_RESPONSE)
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        if not cycle.response_started:
            path: str = self.scope.get("path", "")
            body = _error_body(path, f"the request body did not arrive within {_timeouts()[1]:g} seconds")
            media_type = "application/json" if path.startswith(_WEBHOOK_PREFIX) else negotiate(
                Headers(raw=list(self.scope["headers"])).get("accept"))
            self.transport.write(b"".join([
                b"HTTP/1.1 408 Request Timeout\r\n",
                b"content-type: " + media_type.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                # The rest of the body may still come; the connection cannot carry another request.
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]))
        # The request is over for the application too: its `receive` answers http.disconnect and
        # whatever it still sends is dropped, as for a client that went away.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Nothing has arrived yet, and uvicorn's keep-alive timer starts only after a response.
        self._arm(_timeouts()[0], self._headers_timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # The read left a request unfinished: from now on it has a deadline (unless one runs already).
        if self._deadline is None and not self.transport.is_closing():
            if self._in_body:
                self._arm(_timeouts()[1], self._body_timed_out)
            elif self._in_headers:
                self._arm(_timeouts()[0], self._headers_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._in_headers = False
        # The header deadline is met; the body's starts at the end of the read that left it unfinished.
        self._disarm()
        self._in_body = self.cycle is not None and self.cycle.more_body and not self.parser.should_upgrade()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # else uvicorn starts the next request, its headers already read
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timer closes an idle connection; the next request's
        # headers get their own deadline from its first read. Only a keep-alive longer than that
        # deadline needs ours in the meantime.
        if waiting and not self.transport.is_closing() and self.timeout_keep_alive > _timeouts()[0]:
            self._arm(_timeouts()[0], self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
