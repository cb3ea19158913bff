"""The periodic jobs and how often each runs. The worker registers them with RQ's CronScheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Periodic:
    func: Callable[..., Any]
    interval_seconds: int
    queue: str


def periodic_jobs(intervals: dict[str, int]) -> list[Periodic]:
    """Every periodic job, with its interval looked up by name (defaults below)."""
    jobs: list[Periodic] = []
    del intervals
    return jobs
