"""The typed script layer: every Lua script declares itself for Redis 7+ and has one typed call."""

from __future__ import annotations

import inspect

from db import scripts
from db.scripts import Scripts, script_names, source


def test_every_script_starts_with_a_lua_shebang() -> None:
    """A script without `#!lua` would let an undeclared key work by luck on one node."""
    assert [] == [name for name in script_names() if not source(name).startswith("#!lua")]


def test_every_script_has_one_typed_method_and_nothing_is_looked_up_by_name() -> None:
    """Callers reach a script only through a method named after it; a typo fails at type-check time."""
    methods = {name for name, _ in inspect.getmembers(Scripts, inspect.iscoroutinefunction)
               if not name.startswith("_") and name != "aclose"}  # aclose closes what the calls opened
    assert set(script_names()) == methods
    assert "__getattr__" not in vars(Scripts)


def test_includes_are_expanded_once_loaded() -> None:
    """The shared cart steps are written once in db/lua/lib and put into every script that uses them."""
    for name in script_names():
        assert not scripts._INCLUDE.search(source(name))
    for name in ("cart_change", "cart_merge", "order_reserve"):
        assert "local function cart_clear_lines" in source(name)
    assert scripts.source("order_reserve").splitlines()[0] == "#!lua"


async def test_every_script_compiles_on_the_state_redis(redis) -> None:
    """Each script loads on the server the suite runs against (flags and included code included)."""
    for name in script_names():
        assert await redis.script_load(source(name))
