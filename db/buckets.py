"""Buckets: how live state that is not per product is spread over a Redis Cluster's slots.

Every key a script touches must hash to one slot. A product's keys share its own hash tag; a
customer's keys (allowance, idempotency keys, orders in flight, cart) and the queues an order
joins (to persist, dirty carts) share the tag of the customer's *bucket*, one of a small fixed
number. Guest carts go by a bucket of their session id. A queue per bucket, instead of one per
customer, keeps the drainers' walk short; a bucket per customer, instead of one queue for all,
lets the buckets spread over the shards.

An order id carries its customer's bucket, so `order:{...}` shares the customer's slot while the
id alone still names the key (a status change, a subscription). The id stays a UUID that sorts by
creation time: a version 8 UUID laid out as a UUIDv7 (48 bits of milliseconds first) whose 12 bits
after the version hold the bucket (8 bits) and 4 random bits, followed by 62 random bits. Ids made
before buckets existed (version 7) carry none; their keys keep the names they were written under.

The bucket count is fixed for a deployment, like ORDER_PARTITIONS: every API process and worker
must use the same one (REDIS_BUCKETS), because a customer's keys are found by it.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
import zlib

DEFAULT_COUNT = 16
MAX_COUNT = 256  # the 8 bits an order id has for its bucket

_count = DEFAULT_COUNT


def count() -> int:
    return _count


def configure(bucket_count: int) -> None:
    """Set the bucket count of this process (from REDIS_BUCKETS, at start-up)."""
    global _count
    if not 1 <= bucket_count <= MAX_COUNT:
        raise ValueError(f"the bucket count must be between 1 and {MAX_COUNT}, not {bucket_count}")
    _count = bucket_count


def of_customer(customer_id: int) -> int:
    return customer_id % _count


def of_session(sid: str) -> int:
    return zlib.crc32(sid.encode()) % _count


def of_owner(owner: str) -> int:
    """The bucket of a cart owner ("customer:<id>" or "guest:<sid>")."""
    kind, _, ident = owner.partition(":")
    if kind == "customer" and ident.isdigit():
        return of_customer(int(ident))
    return of_session(ident)


def new_order_id(bucket: int) -> str:
    """A fresh order id carrying `bucket`: 48 bits of milliseconds, version 8, the bucket, 66 random bits."""
    if not 0 <= bucket < MAX_COUNT:
        raise ValueError(f"bucket {bucket} out of range")
    ms = time.time_ns() // 1_000_000
    value = (ms & (2**48 - 1)) << 80
    value |= 0x8 << 76
    value |= bucket << 68
    value |= secrets.randbits(4) << 64
    value |= 0b10 << 62  # the RFC 9562 variant
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))


# An id as new_order_id writes it (lower-case, version 8, the RFC 9562 variant); the bucket is the
# two hex digits after the version. Read without parsing a UUID: a reservation names an order's
# keys several times.
_CANONICAL_V8 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-8([0-9a-f]{2})[0-9a-f]-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def of_order(order_id: str) -> int | None:
    """The bucket an order id carries, or None for an id made before buckets (or not an id)."""
    canonical = _CANONICAL_V8.fullmatch(order_id)
    if canonical is not None:
        return int(canonical.group(1), 16)
    try:
        parsed = uuid.UUID(order_id)
    except ValueError:
        return None
    if parsed.version != 8:
        return None
    return (parsed.int >> 68) & 0xFF
