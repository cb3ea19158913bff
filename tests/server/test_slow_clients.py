"""A client that stalls in its headers or its body is cut off by the API process itself: 408 and the
connection closed, within the configured deadlines; clients that finish in time are served as usual."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.stack import OUTPUT, ApiProcess, Stack

DEADLINE = 1  # seconds, both REQUEST_HEADER_TIMEOUT_SECONDS and REQUEST_BODY_TIMEOUT_SECONDS
# Long enough for a busy machine, far shorter than a connection left open.
GRACE = 8.0
LOG = "server-slow-clients"


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[ApiProcess]:
    extra = stack.start_extra_server(LOG, REQUEST_HEADER_TIMEOUT_SECONDS=str(DEADLINE),
                                     REQUEST_BODY_TIMEOUT_SECONDS=str(DEADLINE))
    try:
        yield extra
    finally:
        extra.process.terminate()
        extra.process.wait(timeout=15)
        stack.extra_servers.remove(extra)
    log = (OUTPUT / f"{LOG}.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


class Connection:
    """A raw TCP connection to the server, to send exactly the bytes a slow client would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection; fails if it does not within GRACE."""
        return await asyncio.wait_for(self.reader.read(), GRACE)

    async def read_response(self) -> bytes:
        """One response with a Content-Length body, leaving the connection open."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), GRACE)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return head + await asyncio.wait_for(self.reader.readexactly(length), GRACE)


@pytest.fixture
async def conn(server: ApiProcess) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    yield Connection(reader, writer)
    writer.close()


def parse(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def request(path: str, body: bytes, content_length: int | None = None, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: shop.example", "Content-Type: application/json",
             f"Content-Length: {len(body) if content_length is None else content_length}",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


QUERY = json.dumps({"query": "{ __typename }"}).encode()


def assert_timed_out(started: float) -> None:
    elapsed = time.monotonic() - started
    assert DEADLINE * 0.9 <= elapsed < GRACE, elapsed


async def test_a_connection_that_sends_nothing_is_closed(conn: Connection) -> None:
    """A connection opened and left silent gets a 408 and is closed after the header deadline."""
    started = time.monotonic()
    status, headers, body = parse(await conn.read_until_closed())
    assert_timed_out(started)
    assert (408, "close") == (status, headers["connection"])
    assert "REQUEST_TIMEOUT" == body["errors"][0]["extensions"]["code"]


async def test_half_a_request_line_is_closed(conn: Connection) -> None:
    """Half a request line and then nothing: 408 and closed after the header deadline."""
    await conn.send(b"POST /gra")
    started = time.monotonic()
    status, _, _ = parse(await conn.read_until_closed())
    assert_timed_out(started)
    assert 408 == status


async def test_stalled_headers_on_a_kept_alive_connection_are_closed(conn: Connection) -> None:
    """After one answered request, a second whose headers stop halfway is cut off too (uvicorn's keep-alive
    timer alone stops at the first byte of the next request)."""
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: shop.example\r\n\r\n")
    assert 200 == parse(await conn.read_response())[0]
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: shop.example\r\n")
    started = time.monotonic()
    assert 408 == parse(await conn.read_until_closed())[0]
    assert_timed_out(started)


async def test_a_stalled_graphql_body_is_a_408_in_json(conn: Connection) -> None:
    """/graphql: headers promise 200 bytes, 20 come, then nothing: a 408 with a JSON error and the connection closed."""
    await conn.send(request("/graphql", b"", content_length=200, Accept="application/graphql-response+json"))
    await conn.send(QUERY[:20])
    started = time.monotonic()
    status, headers, body = parse(await conn.read_until_closed())
    assert_timed_out(started)
    assert (408, "close") == (status, headers["connection"])
    assert headers["content-type"].startswith("application/graphql-response+json")
    [error] = body["errors"]
    assert "REQUEST_TIMEOUT" == error["extensions"]["code"]
    assert "did not arrive" in error["message"]


async def test_a_trickled_body_is_cut_off(conn: Connection) -> None:
    """A body sent a byte at a time, each byte in time but the whole too slow, is cut off at the deadline."""
    padded = QUERY + b" " * 100
    await conn.send(request("/graphql", b"", content_length=len(padded)))
    started = time.monotonic()

    async def trickle() -> None:
        for byte in padded:
            await conn.send(bytes([byte]))
            await asyncio.sleep(0.05)  # the client's pace, not a wait for the server

    sender = asyncio.create_task(trickle())
    try:
        status = parse(await conn.read_until_closed())[0]
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
    assert 408 == status
    assert_timed_out(started)


async def test_a_stalled_webhook_body_is_a_408_in_json(conn: Connection) -> None:
    """The payment webhook: a body that stops is a 408 with the webhook's JSON error shape."""
    await conn.send(request("/webhooks/payments", b"", content_length=500))
    await conn.send(b'{"id": "evt_')
    status, headers, body = parse(await conn.read_until_closed())
    assert (408, "close") == (status, headers["connection"])
    assert "did not arrive" in body["error"]


async def test_a_body_sent_in_pieces_within_the_deadline_is_served(conn: Connection) -> None:
    """Headers and body split over several writes, all within the deadlines, get the usual answer,
    and the kept-alive connection serves a second request."""
    head = request("/graphql", QUERY)
    for part in (head[:10], head[10:], QUERY[:5], QUERY[5:]):
        await conn.send(part)
    status, _, body = parse(await conn.read_response())
    assert (200, {"data": {"__typename": "Query"}}) == (status, body)
    await conn.send(request("/graphql", QUERY) + QUERY)
    assert 200 == parse(await conn.read_response())[0]
