"""Lua scripts: one file each in db/lua, registered once per client and called by SHA."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent / "lua"


@cache
def source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class Scripts:
    """Every script of db/lua bound to one Redis client (sync or asyncio).

    redis-py's Script objects send EVALSHA and fall back to loading the script once after a
    Redis restart (NOSCRIPT), so callers never resend the source on the hot path.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts: dict[str, Any] = {}
        for path in sorted(LUA_DIR.glob("*.lua")):
            self._scripts[path.stem] = client.register_script(source(path.stem))

    @property
    def client(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(f"no Lua script named {name!r} in db/lua") from None
