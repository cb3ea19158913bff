"""Guest sessions, registration, sign-in, sign-out and tokens."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.api import Api
from tests.stack import Stack

REGISTER = (
    "mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
    "{ token customer { id email isStaff } errors { code message field } } }"
)
LOGIN = (
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
    "{ token customer { id email } errors { code message field } } }"
)
ME = "{ me { id email isStaff } }"


async def test_register_returns_a_working_token(api: Api, email: str) -> None:
    """A new customer gets a token that identifies them in `me`."""
    data = (await api(REGISTER, e=email, p="long enough pw"))["register"]
    assert ([], email, False) == (data["errors"], data["customer"]["email"], data["customer"]["isStaff"])
    me = await api.as_(token=data["token"])(ME)
    assert {"id": data["customer"]["id"], "email": email, "isStaff": False} == me["me"]


async def test_me_is_null_for_guests_and_bad_tokens(api: Api) -> None:
    """Without a valid token, `me` is null."""
    assert {"me": None} == await api(ME)
    assert {"me": None} == await api.as_(token="forged-token")(ME)


@pytest.mark.parametrize(
    ("email_value", "password", "field"),
    [
        ("not-an-email", "long enough pw", "email"),
        ("a@b", "long enough pw", "email"),
        ("x" * 250 + "@example.com", "long enough pw", "email"),
        ("ok@example.com", "short", "password"),
        ("ok@example.com", "p" * 257, "password"),
    ],
)
async def test_register_rejects_bad_input(api: Api, email_value: str, password: str, field: str) -> None:
    """A malformed email or a password outside 8..256 characters is INVALID_INPUT naming the field."""
    data = (await api(REGISTER, e=email_value, p=password))["register"]
    assert (None, [("INVALID_INPUT", field)]) == (
        data["token"], [(e["code"], e["field"]) for e in data["errors"]]
    )


async def test_register_twice_is_email_taken_in_any_case(api: Api, email: str) -> None:
    """An email already registered (compared case-insensitively) is EMAIL_TAKEN."""
    await api(REGISTER, e=email, p="long enough pw")
    data = (await api(REGISTER, e=email.upper(), p="another password"))["register"]
    assert ["EMAIL_TAKEN"] == [e["code"] for e in data["errors"]]


async def test_login_with_right_and_wrong_password(api: Api, email: str) -> None:
    """The right password signs in; a wrong one or an unknown email is INVALID_CREDENTIALS."""
    await api(REGISTER, e=email, p="long enough pw")
    good = (await api(LOGIN, e=email.upper(), p="long enough pw"))["login"]
    bad = (await api(LOGIN, e=email, p="wrong password"))["login"]
    unknown = (await api(LOGIN, e="nobody-" + email, p="long enough pw"))["login"]
    assert [] == good["errors"] and good["token"]
    assert [["INVALID_CREDENTIALS"], ["INVALID_CREDENTIALS"]] == [
        [e["code"] for e in bad["errors"]], [e["code"] for e in unknown["errors"]]
    ]
    assert (None, None) == (bad["token"], unknown["token"])


async def test_repeated_wrong_passwords_are_rate_limited(api: Api, email: str) -> None:
    """After ten wrong passwords in a row, even the right one is RATE_LIMITED for a while."""
    await api(REGISTER, e=email, p="long enough pw")
    for _ in range(10):
        await api(LOGIN, e=email, p="wrong password")
    data = (await api(LOGIN, e=email, p="long enough pw"))["login"]
    assert ["RATE_LIMITED"] == [e["code"] for e in data["errors"]]


async def test_logout_revokes_the_token(api: Api, email: str) -> None:
    """After logout the token no longer identifies anyone; other tokens keep working."""
    first = await api.register(email)
    second = await api.login(email)
    assert {"logout": True} == await first("mutation { logout }")
    assert {"me": None} == await first(ME)
    assert email == (await second(ME))["me"]["email"]
    assert {"logout": False} == await first("mutation { logout }")


async def test_passwords_are_stored_as_argon2_hashes(api: Api, email: str, pg) -> None:
    """The database holds an argon2id hash, never the password."""
    await api(REGISTER, e=email, p="long enough pw")
    stored = await pg.fetchval("SELECT password_hash FROM customers WHERE email = $1", email)
    assert stored.startswith("$argon2id$") and "long enough pw" not in stored


async def test_start_session_issues_random_ids_and_a_cookie(stack: Stack) -> None:
    """startSession gives a fresh unguessable id, also as an HttpOnly `sid` cookie."""
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(*[
            client.post(stack.graphql_url, json={"query": "mutation { startSession { sessionId } }"})
            for _ in range(5)
        ])
    ids = [r.json()["data"]["startSession"]["sessionId"] for r in responses]
    assert 5 == len(set(ids)) and all(len(i) >= 32 for i in ids)
    cookie = responses[0].headers["set-cookie"]
    assert f"sid={ids[0]}" in cookie and "HttpOnly" in cookie


async def test_logout_reaches_every_process_at_once(api: Api, email: str, state) -> None:
    """A token another process has cached stops working there as soon as it is logged out."""
    from tests.stack import eventually

    signed_in = await api.register(email)
    assert signed_in.token is not None
    cached = await state.accounts.resolve_token(signed_in.token)
    assert cached is not None
    await signed_in("mutation { logout }")

    async def forgotten() -> bool:
        return await state.accounts.resolve_token(signed_in.token) is None

    # Well inside the 5 s the cache would otherwise trust it.
    await eventually(forgotten, timeout=2, message="the other process to drop the revoked token")
