"""Budgets that hold under concurrency: sign-in guesses per account and address, per address, per
account, and new guest sessions per address. A server of their own runs with small budgets; each
test speaks from addresses of its own through X-Forwarded-For (the suite trusts 127.0.0.1)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api import Api
from tests.conftest import unique
from tests.stack import ApiProcess, Stack

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token errors { code message } } }"
START = "mutation { startSession { sessionId } }"
CART = "{ cart { totalQuantity } }"
PASSWORD = "the right password"
_addresses = itertools.count(1)


def address() -> str:
    """A client address no other test uses (TEST-NET-3, never routed)."""
    n = next(_addresses)
    return f"203.0.{113 + n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def limited(stack: Stack) -> Iterator[ApiProcess]:
    server = stack.start_extra_server(
        "server-limits",
        LOGIN_ATTEMPTS_PER_WINDOW="3",
        LOGIN_ATTEMPTS_PER_CLIENT="5",
        LOGIN_ATTEMPTS_PER_ACCOUNT="8",
        SESSION_STARTS_PER_MINUTE="4",
    )
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)
        stack.extra_servers.remove(server)


async def call(server: ApiProcess, query: str, client: str, headers: dict[str, str] | None = None,
               **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(server.graphql_url, json={"query": query, "variables": variables},
                                   headers={"X-Forwarded-For": client, **(headers or {})})
    assert 200 == response.status_code, response.text
    return response.json()["data"]


async def codes(server: ApiProcess, client: str, email: str, password: str) -> list[str]:
    data = await call(server, LOGIN, client, e=email, p=password)
    return [e["code"] for e in data["login"]["errors"]] or ["OK"]


async def test_concurrent_guesses_are_counted_before_they_are_checked(api: Api, limited: ApiProcess) -> None:
    """40 wrong passwords sent at once from one address: only 3 are ever checked, the rest RATE_LIMITED."""
    email = f"{unique('guess')}@example.com"
    await api.register(email, PASSWORD)
    client = address()
    results = await asyncio.gather(*[codes(limited, client, email, "wrong guess") for _ in range(40)])
    assert {"INVALID_CREDENTIALS": 3, "RATE_LIMITED": 37} == {
        code: sum(r == [code] for r in results) for code in ("INVALID_CREDENTIALS", "RATE_LIMITED")
    }


async def test_a_stranger_guessing_does_not_lock_the_owner_out(api: Api, limited: ApiProcess) -> None:
    """A stranger locked out at their address; the owner signs in from theirs with the right password."""
    email = f"{unique('owner')}@example.com"
    await api.register(email, PASSWORD)
    stranger, owner = address(), address()
    for _ in range(3):
        assert ["INVALID_CREDENTIALS"] == await codes(limited, stranger, email, "guess")
    assert ["RATE_LIMITED"] == await codes(limited, stranger, email, PASSWORD)
    assert ["OK"] == await codes(limited, owner, email, PASSWORD)


async def test_a_successful_sign_in_clears_its_addresses_tally(api: Api, limited: ApiProcess) -> None:
    """Two typos, a success, two more typos: the owner is never locked out of their own account."""
    email = f"{unique('typo')}@example.com"
    await api.register(email, PASSWORD)
    client = address()
    seen = [await codes(limited, client, email, p) for p in ("typo", "typo", PASSWORD, "typo", "typo", PASSWORD)]
    assert [["INVALID_CREDENTIALS"]] * 2 + [["OK"]] + [["INVALID_CREDENTIALS"]] * 2 + [["OK"]] == seen


async def test_one_address_cannot_spray_many_accounts(api: Api, limited: ApiProcess) -> None:
    """After 5 failures from one address over any accounts, that address is RATE_LIMITED for all of them."""
    client = address()
    for i in range(5):
        assert ["INVALID_CREDENTIALS"] == await codes(limited, client, f"{unique('spray')}-{i}@example.com", "x" * 8)
    assert ["RATE_LIMITED"] == await codes(limited, client, f"{unique('spray')}@example.com", "x" * 8)
    assert ["INVALID_CREDENTIALS"] == await codes(limited, address(), f"{unique('spray')}@example.com", "x" * 8)


async def test_many_addresses_guessing_one_account_lock_it_for_one_window(api: Api, limited: ApiProcess) -> None:
    """A distributed guesser (8 failures from 8 addresses) locks the account for everyone, until the window ends."""
    email = f"{unique('botnet')}@example.com"
    await api.register(email, PASSWORD)
    for _ in range(8):
        assert ["INVALID_CREDENTIALS"] == await codes(limited, address(), email, "guess")
    data = await call(limited, LOGIN, address(), e=email, p=PASSWORD)
    assert ["RATE_LIMITED"] == [e["code"] for e in data["login"]["errors"]]
    assert "for this email;" in data["login"]["errors"][0]["message"]


async def test_new_guest_sessions_have_a_budget_per_address(limited: ApiProcess) -> None:
    """Four new sessions a minute from one address; the fifth is refused, another address is not."""
    client = address()
    started = await asyncio.gather(*[call(limited, START, client) for _ in range(4)])
    assert 4 == len({s["startSession"]["sessionId"] for s in started})
    async with httpx.AsyncClient(timeout=30) as http:
        refused = (await http.post(limited.graphql_url, json={"query": START},
                                   headers={"X-Forwarded-For": client})).json()
    assert None is refused["data"]
    assert ["too many new sessions from your address"] == [e["message"].split(";")[0] for e in refused["errors"]]
    assert (await call(limited, START, address()))["startSession"]["sessionId"]


async def test_forged_and_tampered_session_ids_are_refused(limited: ApiProcess) -> None:
    """Only ids the server signed work: a made-up id and an issued id with one character changed are refused."""
    client = address()
    sid = (await call(limited, START, client))["startSession"]["sessionId"]
    middle = len(sid) // 2 if sid[len(sid) // 2] != "." else len(sid) // 2 + 1
    tampered = sid[:middle] + ("A" if sid[middle] != "A" else "B") + sid[middle + 1:]
    assert 0 == (await call(limited, CART, client, {"X-Session-Id": sid}))["cart"]["totalQuantity"]
    for forged in ("x" * 43, tampered, sid.split(".")[0]):
        data = await call(limited, "mutation { cartClear { errors { code } } }", client, {"X-Session-Id": forged})
        assert [{"code": "NOT_AUTHENTICATED"}] == data["cartClear"]["errors"]
