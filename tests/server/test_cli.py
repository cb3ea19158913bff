"""The operations commands a deployment relies on."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from db.engine import asyncpg_dsn
from tests.api import Api
from tests.conftest import unique
from tests.resolvers.test_orders import place
from tests.server.test_webhooks import wait_status
from tests.stack import OUTPUT, Stack, eventually, free_port


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


@contextlib.asynccontextmanager
async def dev_world(stack: Stack, data_dir: Path) -> AsyncIterator[dict[str, str]]:
    """Settings for a `rushcart dev` of its own: a fresh database on the test PostgreSQL, a spare
    Redis database, its own data folder, and no PUBLIC_BASE_URL."""
    database = "rushcart_dev_cli"
    admin = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
        redis_url = urlunsplit(urlsplit(stack.redis_url)._replace(path="/9"))
        env = {name: value for name, value in stack.env.items() if name != "PUBLIC_BASE_URL"}
        env.update(DATABASE_URL=make_url(stack.database_url).set(database=database).render_as_string(False),
                   REDIS_URL=redis_url, RUSHCART_DATA_DIR=str(data_dir))
        spare = aioredis.Redis.from_url(redis_url)
        await spare.flushdb()
        await spare.aclose()
        yield env
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def buy_and_pay_through_dev(env: dict[str, str], *dev_args: str) -> None:
    """Start `rushcart dev --port P *dev_args`, buy a demo product through its API, pay it with
    `rushcart pay` (no URL given: it finds the port dev serves on) and see it PAID; then stop dev."""
    port = free_port()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / f"dev{'-'.join(('', *dev_args)).replace('--', '')}.log"
    with log.open("wb") as out:
        dev = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "dev", "--port", str(port), *dev_args, env=env,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async def ready() -> bool:
            assert dev.returncode is None, f"rushcart dev exited; see {log}"
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=120, message="rushcart dev's API")
        shop = Api(f"http://127.0.0.1:{port}/graphql")
        buyer = await shop.register(f"{unique('devpay')}@example.com")
        first = (await shop("{ products(first: 1) { edges { node { id } } } }"))["products"]["edges"][0]["node"]
        order = (await place(buyer, (first, 1)))["order"]
        pay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "pay", order["id"], env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await pay.communicate()
        assert (0, True) == (pay.returncode, out.decode().startswith("202")), out.decode()
        await wait_status(buyer, order["id"], "PAID", timeout=60)
    finally:
        if dev.returncode is None:
            dev.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(dev.wait(), 60)
            except TimeoutError:
                dev.kill()
                await dev.wait()


async def test_pay_command_finds_the_port_dev_serves_on(stack: Stack, tmp_path: Path) -> None:
    """With no URL given, `rushcart pay` calls the API that `rushcart dev --port` started, not port 8000."""
    async with dev_world(stack, tmp_path) as env:
        await buy_and_pay_through_dev(env)
    assert not (tmp_path / "services.json").exists(), "rushcart dev forgets its record when it stops"


async def test_dev_runs_on_a_local_cluster_when_asked(stack: Stack, tmp_path: Path) -> None:
    """`rushcart dev --cluster` starts a 3-primary + 3-replica Valkey Cluster and a queue Redis of its
    own: an order is bought and paid through it, and the cluster is gone when dev stops."""
    async with dev_world(stack, tmp_path) as env:
        del env["REDIS_URL"]
        await buy_and_pay_through_dev(env, "--cluster")
    cluster = tmp_path / "redis-cluster"
    assert 6 == len(list(cluster.glob("node-*/nodes.conf"))), "six nodes formed a cluster"
    assert [] == list(cluster.glob("node-*/valkey.pid")), "every node stopped with dev"
    assert not (tmp_path / "services.json").exists(), "rushcart dev forgets its record when it stops"
