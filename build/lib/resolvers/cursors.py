"""Opaque pagination cursors: base64 of a kind and a key, so clients cannot build their own."""

from __future__ import annotations

import base64
import binascii

from db.errors import InvalidInput


def encode(kind: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None, field: str = "after") -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("not a valid cursor", field=field) from None
    prefix, _, key = raw.partition(":")
    if prefix != kind or not key:
        raise InvalidInput("not a valid cursor", field=field)
    return key
