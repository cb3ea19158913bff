"""A crowd of subscribers is kept out of the garbage collector's view while it watches, and handed
back to it once it has left, on plain objects and the interpreter's own collector."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from collections.abc import Callable

from server.state import freeze_crowds


class Hub:
    subscriber_count = 0


class Connection:
    """Stands for a subscriber's objects: a cycle, freed only by the collector."""

    def __init__(self) -> None:
        self.me = self


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_growing_crowd_is_frozen_and_collected_once_it_has_left() -> None:
    hub = Hub()
    task = asyncio.create_task(freeze_crowds(hub, every=0.01))  # type: ignore[arg-type]
    try:
        hub.subscriber_count = 300
        await until(lambda: gc.get_freeze_count() > 0, "a crowd of 300 frozen")
        left = Connection()
        gone = weakref.ref(left)
        hub.subscriber_count = 400  # a quarter more: the newcomers' objects are frozen too
        await until(lambda obj=left: _frozen(obj), "the grown crowd frozen")
        del left
        gc.collect()
        assert gone() is not None, "a frozen cycle is not walked by a collection"
        hub.subscriber_count = 100  # the crowd has halved: collected once, then frozen again
        await until(lambda: gone() is None, "the departed crowd's cycles freed")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.unfreeze()


def _frozen(obj: object) -> bool:
    # A frozen object is in no generation the collector walks.
    return not any(obj is o for o in gc.get_objects())
