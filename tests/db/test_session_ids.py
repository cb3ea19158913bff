"""Signed guest session ids: only the server can make one, and it ends with the session TTL."""

from __future__ import annotations

from db.session_ids import SessionIds, derive_secret

KEY = derive_secret("whsec_" + "k" * 32, "guest session ids")


def test_an_issued_id_is_valid_and_unguessable() -> None:
    """Ids differ every time, carry at least 128 random bits, and check out without any lookup."""
    ids = SessionIds(KEY, 3600)
    issued = {ids.issue() for _ in range(100)}
    assert 100 == len(issued)
    assert all(ids.valid(sid) and len(sid) >= 43 for sid in issued)


def test_a_tampered_or_foreign_id_is_refused() -> None:
    """One changed character, a bare random part, junk, or another deployment's key: all refused."""
    ids = SessionIds(KEY, 3600)
    sid = ids.issue()
    body, _, tag = sid.partition(".")
    other = SessionIds(derive_secret("whsec_" + "o" * 32, "guest session ids"), 3600)
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:] + "." + tag
    # The tag's last character carries unused bits: another spelling of the same bytes is refused too.
    last = tag[-1]
    respelled = body + "." + tag[:-1] + ("A" if last != "A" else "E")
    for bad in (flipped, body, "", ".", "x" * 200, "not base64!." + tag, other.issue(), respelled):
        assert not ids.valid(bad), bad


def test_an_id_expires_with_the_session_ttl() -> None:
    """Valid until TTL seconds after it was issued, not after."""
    ids = SessionIds(KEY, 60)
    sid = ids.issue(now=1_000_000)
    assert (True, True, False) == (ids.valid(sid, now=1_000_000), ids.valid(sid, now=1_000_060),
                                   ids.valid(sid, now=1_000_061))


def test_keys_for_different_purposes_differ() -> None:
    """The session key derived from the webhook secret is not the webhook secret itself."""
    assert derive_secret("s" * 32, "guest session ids") != derive_secret("s" * 32, "something else")
