"""The event hub's pub/sub readers (db.pubsub_links), with plain objects in place of Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.exceptions

from db.pubsub_links import PubSubLinks


class CancelAsError:
    """A pub/sub connection whose read, when cancelled, fails as if the connection broke (as a client
    may: it closes the connection under the cancelled read)."""

    async def subscribe(self, *channels: str) -> None:
        pass

    async def get_message(self, **_: Any) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise redis.exceptions.ConnectionError("Connection closed by server.") from None

    async def aclose(self) -> None:
        pass


class OneServer:
    def pubsub(self) -> CancelAsError:
        return CancelAsError()


async def test_a_reader_stops_when_cancelled_even_if_the_client_turns_that_into_a_lost_connection() -> None:
    """Cancelling a reader (a shutdown, a test loop closing) ends it, where a reader that took the
    error for a lost connection would reconnect and read forever."""
    lost: list[list[str]] = []
    links = PubSubLinks(OneServer(), lambda message: None, lost.append)  # type: ignore[arg-type]
    await links.start(["events:tokens"])
    reader = links._links[""].task
    assert reader is not None
    await asyncio.sleep(0)  # the reader is waiting for a message
    reader.cancel()
    done, _ = await asyncio.wait({reader}, timeout=2)
    if not done:
        links._closing = True  # let the reader end at its next error, so that the test loop can close
        reader.cancel()
        await asyncio.wait({reader}, timeout=2)
        pytest.fail("the reader kept reading after it was cancelled")
    assert reader.cancelled() and [] == lost
