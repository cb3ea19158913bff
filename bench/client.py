"""A minimal HTTP/1.1 keep-alive client for the load generator (not named http.py: it would shadow the stdlib).

The load generator shares two cores with the servers it measures, so every microsecond it
spends per request is taken from them. httpx costs a few hundred microseconds of CPU per
request; this client writes one buffer and reads one Content-Length body, which is all that
uvicorn answers for JSON. `--client httpx` swaps in httpx to cross-check the figures.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 we understand."""


class Connection(Protocol):
    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawConnection:
    """One persistent connection, used by one task at a time (requests are not pipelined)."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        reader, writer = (
            (self._reader, self._writer) if self._reader and self._writer else await self._connect()
        )
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        )
        try:
            writer.write(head.encode("latin-1") + body)
            status, length, chunked, close = self._parse_head(await reader.readuntil(b"\r\n\r\n"))
            if length is not None:
                payload = await reader.readexactly(length)
            elif chunked:
                payload = await self._read_chunked(reader)
            else:
                payload = await reader.read()
                close = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise HttpError(type(exc).__name__) from exc
        if close:
            await self.close()
        return status, payload

    @staticmethod
    def _parse_head(raw: bytes) -> tuple[int, int | None, bool, bool]:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"unexpected status line {lines[0]!r}")
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close"
        return int(parts[1]), length, chunked, close

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


class HttpxConnection:
    """The same interface over httpx: one client (one connection) per task, reopened after close()."""

    def __init__(self, host: str, port: int) -> None:
        self._base_url = f"http://{host}:{port}"
        self._client: httpx.AsyncClient | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self._base_url, limits=httpx.Limits(max_connections=1),
                                             timeout=None)
        try:
            response = await self._client.post(
                path, content=body, headers={"Content-Type": "application/json", **headers}
            )
        except httpx.HTTPError as exc:
            raise HttpError(type(exc).__name__) from exc
        return response.status_code, response.content

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def connect(kind: str, host: str, port: int) -> Connection:
    if kind == "httpx":
        return HttpxConnection(host, port)
    return RawConnection(host, port)
