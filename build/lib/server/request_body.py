"""Request bodies in, JSON objects out: the one place where `/graphql` and the webhook read their input.

Whatever a client sends, this module either returns a JSON object (a `dict`) or raises
`RequestBodyError` with the 4xx status and a message for the client. Nothing malformed gets past
it to raise somewhere deeper:

    413  the body is larger than the route's limit (refused while it is read, never buffered whole)
    400  not UTF-8; not JSON; JSON but not an object (a number, null, a string, an array);
         NaN / Infinity or a number beyond float range; an integer longer than Python converts
         (int-from-str limit); nesting deeper than `MAX_DEPTH` (the parser's recursion limit
         is far beyond it); and, where the whole body is stored, text PostgreSQL cannot hold
         (NUL characters, lone surrogates)
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message

__all__ = ["MAX_DEPTH", "RequestBodyError", "parse_json_object", "read_body"]

# Every JSON body this service takes is shallow (the webhook's event, GraphQL's variables and
# extensions); a bound well above them keeps deep values from exhausting the stack of whatever
# walks them later (the encoder storing a payload, a validator).
MAX_DEPTH = 32


class RequestBodyError(Exception):
    """A body the route cannot take; `status` is 400 or 413 and `message` is meant for the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"RequestBodyError({self.message!r}, status={self.status})"


async def read_body(receive: Callable[[], Awaitable[Message]], limit: int) -> bytes:
    """The whole body from ASGI `receive`; stops reading and raises 413 once it passes `limit` bytes."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestBodyError(f"the request body is larger than {limit} bytes", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise RequestBodyError(f"the request body is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestBodyError(f"the request body holds a number beyond the range of a double: {text[:40]}")
    return value


# Built once: json.loads with any option builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a \ud800-style escape
        return False
    return True


def _check_shape(value: Any, *, storable_text: bool) -> None:
    """Depth within MAX_DEPTH and, if asked, every string and key storable; iterative, so any depth is safe."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            if depth >= MAX_DEPTH:
                raise RequestBodyError(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
            for key, child in item.items():
                if storable_text and not _storable(key):
                    raise RequestBodyError("the JSON body holds a NUL character or a lone surrogate")
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                raise RequestBodyError(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
            pending.extend((child, depth + 1) for child in item)
        elif storable_text and isinstance(item, str) and not _storable(item):
            raise RequestBodyError("the JSON body holds a NUL character or a lone surrogate")


def parse_json_object(body: bytes, *, storable_text: bool = False) -> dict[str, Any]:
    """`body` as a JSON object, or RequestBodyError(400) saying what is wrong with it.

    `storable_text` refuses strings PostgreSQL cannot store (NUL, lone surrogates) anywhere in the
    body: for bodies kept whole, as the webhook's events are.
    """
    if not body.strip():
        raise RequestBodyError("the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestBodyError("the request body is not UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise RequestBodyError(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise RequestBodyError(f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                               f"column {exc.colno})") from None
    except ValueError:
        # Python's int-from-str limit: an integer of thousands of digits.
        raise RequestBodyError("the request body holds an integer with too many digits") from None
    if not isinstance(value, dict):
        raise RequestBodyError(f"the request body must be a JSON object, not {_json_kind(value)}")
    _check_shape(value, storable_text=storable_text)
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
