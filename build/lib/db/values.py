"""Reading values out of Redis answers, which are bytes unless a client decodes them."""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
