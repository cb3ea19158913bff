"""The embedded Redis-protocol server is Valkey 9, with the features rushcart builds on.

The version and sharded pub/sub checks need the embedded server; the Lua checks run on any server
the suite is given, since rushcart's scripts need `#!lua` support wherever they run. The launcher's
extra options are checked on a server started for that test alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.exceptions import ResponseError

from server.embedded import EmbeddedRedis
from tests.conftest import unique
from tests.stack import Stack, wait_until

NOT_EMBEDDED = "REDIS_URL points at a server of your own: only the embedded one is known to be Valkey 9"

INCREMENT = """#!lua
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""

WRITE_UNDER_NO_WRITES = """#!lua flags=no-writes
return redis.call('SET', KEYS[1], 'written')
"""


def embedded(stack: Stack) -> None:
    if stack.redis_server is None:
        pytest.skip(NOT_EMBEDDED)


async def test_embedded_server_reports_valkey_9(stack: Stack, redis: Any) -> None:
    """INFO server names Valkey and a 9.x version."""
    embedded(stack)
    info = await redis.info("server")
    assert ("valkey", "9") == (info["server_name"], str(info["valkey_version"]).split(".")[0])


async def test_lua_script_with_shebang_line_writes_its_declared_key(redis: Any) -> None:
    """An EVAL of a `#!lua` script increments the key it declares and returns the new value."""
    key = unique("lua-shebang:")
    await redis.set(key, 40)
    assert (42, "42") == (await redis.eval(INCREMENT, 1, key, 2), await redis.get(key))


async def test_lua_script_flagged_no_writes_is_refused_a_write(redis: Any) -> None:
    """A script declared `#!lua flags=no-writes` cannot write, and its key stays as it was."""
    key = unique("lua-no-writes:")
    await redis.set(key, "before")
    with pytest.raises(ResponseError, match=r"(?i)write"):
        await redis.eval(WRITE_UNDER_NO_WRITES, 1, key)
    assert "before" == await redis.get(key)


def test_sharded_publish_reaches_a_sharded_subscriber(stack: Stack) -> None:
    """A message sent with SPUBLISH arrives at a client that SSUBSCRIBEd to its channel."""
    embedded(stack)
    channel = unique("sharded:")
    client = sync_redis.Redis.from_url(stack.redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        pubsub.ssubscribe(channel)
        wait_until(lambda: client.pubsub_shardnumsub(channel) == [(channel, 1)],
                   message="the sharded subscription to register")
        assert 1 == client.spublish(channel, "hello")

        def received() -> dict[str, Any] | None:
            message = pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
            return message if message and message["type"] == "smessage" else None

        message = wait_until(received, message="the sharded message")
        assert (channel, "hello") == (message["channel"], message["data"])
    finally:
        pubsub.close()
        client.close()


def test_extra_args_are_passed_to_the_server_after_the_defaults(tmp_path: Path) -> None:
    """Options given as extra_args reach valkey-server and override the launcher's defaults."""
    server = EmbeddedRedis(tmp_path / "valkey", extra_args=("--maxmemory-policy", "allkeys-lru",
                                                            "--appendfilename", "extra.aof"))
    client = sync_redis.Redis.from_url(server.start(), decode_responses=True)
    try:
        config = {**client.config_get("maxmemory-policy"), **client.config_get("appendonly"),
                  **client.config_get("appendfilename")}
    finally:
        client.close()
        server.stop()
    assert {"maxmemory-policy": "allkeys-lru", "appendonly": "yes", "appendfilename": "extra.aof"} == config
