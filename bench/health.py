"""`GET /readyz` for the bench's own servers, answering like rushcart's: 200 once both stores answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response


async def readyz(checks: dict[str, Callable[[], Awaitable[Any]]]) -> Response:
    problems: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await check()
        except Exception as exc:
            problems[name] = type(exc).__name__
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})
