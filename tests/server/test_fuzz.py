"""Generated GraphQL operations (hypothesis-graphql, from the exported schema) sent to the live server as a
guest, a customer and staff: no answer is a 5xx or carries "Unexpected error.".

A fixed seed makes every run send the same operations. The default run sends a few dozen per caller;
`make test-all` runs the `slow` version with FUZZ_EXAMPLES per caller (1000 by default), each caller's
run bounded by FUZZ_SECONDS (300 by default): what is not sent by then is skipped.
"""

from __future__ import annotations

import os
import time
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from graphql import StringValueNode, build_schema
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from tests.api import Api
from tests.conftest import STAFF_PASSWORD, unique
from tests.stack import Stack

SCHEMA = build_schema((Path(__file__).resolve().parents[2] / "schema" / "schema.graphql").read_text())
SEED = 20_240_613
# `logout` would end the caller's own token halfway through the run, and with it the role under test.
FIELDS = sorted((set(SCHEMA.query_type.fields) | set(SCHEMA.mutation_type.fields)) - {"logout"}) \
    if SCHEMA.query_type and SCHEMA.mutation_type else []
ROLES = ("guest", "customer", "staff")


# DateTime inputs (dropCreate's startsAt): instants of any year, and text that is no date at all.
DATETIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.text(max_size=40),
).map(lambda text: StringValueNode(value=text))


def operations(mode: Mode) -> st.SearchStrategy[object]:
    return from_schema(SCHEMA, fields=FIELDS, mode=mode, custom_scalars={"DateTime": DATETIMES})


def check(response: httpx.Response, query: object) -> None:
    """The fuzzing oracle: a 4xx or 200 with JSON, never a 5xx, never a masked server error."""
    assert response.status_code < 500, (response.status_code, query, response.text[:2000])
    assert "Unexpected error." not in response.text, (query, response.text[:2000])
    response.json()


@pytest.fixture(scope="module")
def callers(stack: Stack, staff_account: str) -> dict[str, dict[str, str]]:
    """Headers of each role: none for a guest, a fresh customer's token, a staff token."""
    import asyncio

    async def tokens() -> tuple[str, str]:
        api = Api(stack.graphql_url)
        customer = await api.register(f"{unique('fuzz')}@example.com")
        staff = await api.login(staff_account, STAFF_PASSWORD)
        assert customer.token and staff.token
        return customer.token, staff.token

    customer, staff = asyncio.run(tokens())
    return {"guest": {}, "customer": {"Authorization": f"Bearer {customer}"},
            "staff": {"Authorization": f"Bearer {staff}"}}


def run(stack: Stack, headers: dict[str, str], examples: int, seconds: float, mode: Mode) -> int:
    """Send up to `examples` generated operations within `seconds`; returns how many were sent."""
    deadline = time.monotonic() + seconds
    sent = 0
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=60) as client:

        @seed(SEED)
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(query=operations(mode))
        def fuzz(query: object) -> None:
            nonlocal sent
            if time.monotonic() > deadline:
                return
            check(client.post("/graphql", json={"query": query}), query)
            sent += 1

        fuzz()
    return sent


@pytest.mark.parametrize("role", ROLES)
def test_a_few_generated_operations_get_no_server_error(stack: Stack, callers: dict[str, dict[str, str]],
                                                        role: str) -> None:
    """Thirty generated queries and mutations per caller: none answered with a 5xx or "Unexpected error."."""
    assert run(stack, callers[role], 30, 120, Mode.POSITIVE) > 0


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_many_generated_operations_get_no_server_error(stack: Stack, callers: dict[str, dict[str, str]],
                                                       role: str, mode: Mode) -> None:
    """FUZZ_EXAMPLES valid and schema-violating operations per caller, within FUZZ_SECONDS each: none
    answered with a 5xx or "Unexpected error."."""
    examples = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
    seconds = float(os.environ.get("FUZZ_SECONDS", "300"))
    assert run(stack, callers[role], examples, seconds, mode) > 0

