"""The operations commands a deployment relies on."""

from __future__ import annotations

import asyncio
import sys

from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import place
from tests.server.test_webhooks import wait_status
from tests.stack import Stack


async def run(stack: Stack, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", *args, env={**stack.env, "PUBLIC_BASE_URL": stack.base_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode()


async def test_pay_command_pays_an_order(stack: Stack, api: Api, make_product) -> None:
    """`rushcart pay ORDER_ID` sends a signed success the server accepts; the order turns PAID."""
    buyer = await api.register(f"{unique('cli')}@example.com")
    order = (await place(buyer, (await make_product(), 1)))["order"]
    code, out = await run(stack, "pay", order["id"])
    assert (0, True) == (code, out.startswith("202"))
    await wait_status(buyer, order["id"], "PAID")


async def test_pay_command_can_fail_an_order(stack: Stack, api: Api, make_product) -> None:
    """`rushcart pay ORDER_ID --fail` cancels the order with PAYMENT_FAILED."""
    buyer = await api.register(f"{unique('cli')}@example.com")
    order = (await place(buyer, (await make_product(), 1)))["order"]
    code, _ = await run(stack, "pay", order["id"], "--fail")
    assert 0 == code
    assert "PAYMENT_FAILED" == (await wait_status(buyer, order["id"], "CANCELLED"))["cancelReason"]


async def test_user_create_refuses_bad_input_and_duplicates(stack: Stack) -> None:
    """`rushcart user create` validates its input and refuses an email that exists, with a message."""
    email = f"{unique('op')}@example.com"
    ok, _ = await run(stack, "user", "create", "--email", email, "--password", "long enough pw")
    again, message = await run(stack, "user", "create", "--email", email, "--password", "long enough pw")
    bad, why = await run(stack, "user", "create", "--email", "nope", "--password", "long enough pw")
    assert (0, 1, 1) == (ok, again, bad)
    assert "already exists" in message and "email" in why
    assert "Traceback" not in message + why
