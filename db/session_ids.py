"""Guest session ids that prove themselves: issued by the server, checked without any lookup.

An id is 24 random bytes and the time it was issued, followed by an HMAC-SHA256 tag (128 bits)
of both under a server secret. Only the server can make one; one it never issued is refused by
arithmetic alone (constant-time compare), without Redis or PostgreSQL. A session therefore
costs nothing until it is used: there is no per-session state, and what a guest builds (a cart)
carries its own lifetime. A Redis flush loses no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

RANDOM_BYTES = 24  # 192 bits: unguessable with room to spare
TAG_BYTES = 16
_STAMP_BYTES = 5  # seconds since the epoch, good until the year 36812


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionIds:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:TAG_BYTES]

    def issue(self, now: float | None = None) -> str:
        stamp = int(time.time() if now is None else now).to_bytes(_STAMP_BYTES, "big")
        payload = secrets.token_bytes(RANDOM_BYTES) + stamp
        return _b64(payload) + "." + _b64(self._tag(payload))

    def valid(self, sid: str, now: float | None = None) -> bool:
        """True for an id this server issued that has not outlived the session TTL."""
        body, dot, tag = sid.partition(".")
        if not dot or len(sid) > 128:
            return False
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (ValueError, UnicodeEncodeError):
            return False
        # Only the one spelling the server wrote: base64's last character can carry unused bits, so
        # another spelling of the same bytes must not pass for the issued id.
        if len(payload) != RANDOM_BYTES + _STAMP_BYTES or _b64(payload) != body or _b64(given) != tag:
            return False
        if not hmac.compare_digest(given, self._tag(payload)):
            return False
        issued = int.from_bytes(payload[RANDOM_BYTES:], "big")
        return 0 <= (time.time() if now is None else now) - issued <= self.ttl_seconds


def derive_secret(master: str, purpose: str) -> bytes:
    """A key for one purpose from a deployment's secret, so one leaked use cannot forge another."""
    return hmac.new(master.encode(), f"rushcart {purpose}".encode(), hashlib.sha256).digest()
