"""A stopping worker does not wait forever for RQ's scheduler process (server.worker.Worker)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from types import SimpleNamespace

import pytest

from server import worker as worker_module
from server.worker import Worker


def _deaf_to_sigterm(ready: multiprocessing.synchronize.Event) -> None:
    # As RQ's scheduler child is when SIGTERM reaches it before it installs its own handlers.
    signal.signal(signal.SIGTERM, lambda *_: None)
    ready.set()
    while True:
        time.sleep(0.05)


def test_a_scheduler_process_that_ignores_sigterm_is_killed_when_the_worker_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker asks, waits its bound, then kills the child, so its own SIGTERM still ends it."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_deaf_to_sigterm, args=(ready,))
    child.start()
    try:
        assert ready.wait(10), "the stand-in scheduler never started"
        monkeypatch.setattr(worker_module, "SCHEDULER_STOP_SECONDS", 0.2)
        stopping = Worker.__new__(Worker)  # only its scheduler is looked at
        stopping.scheduler = SimpleNamespace(_process=child)  # type: ignore[assignment]
        stopping.stop_scheduler()
        assert (False, -signal.SIGKILL) == (child.is_alive(), child.exitcode)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
