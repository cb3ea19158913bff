"""The `rushcart` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.settings import Settings, SettingsError

log = logging.getLogger("rushcart")

STAFF_EMAIL = "staff@rushcart.dev"


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def _migrate(settings: Settings) -> None:
    from db.migrate import upgrade

    upgrade(settings.database_url, settings.order_partitions, statement_cache=settings.statement_cache)


async def _seed(settings: Settings) -> int:
    from db.engine import make_engine, make_sessionmaker
    from db.seed import seed_catalogue

    engine = make_engine(settings.database_url, pool_size=1, statement_cache=settings.statement_cache)
    try:
        return await seed_catalogue(make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def _ensure_user(settings: Settings, email: str, password: str, staff: bool) -> str:
    """Create the account; returns 'created' or 'exists'."""
    from db.accounts import create_customer
    from db.engine import make_engine, make_sessionmaker
    from db.errors import EmailTaken

    engine = make_engine(settings.database_url, pool_size=1, statement_cache=settings.statement_cache)
    try:
        await create_customer(make_sessionmaker(engine), email.lower(), password, is_staff=staff)
        return "created"
    except EmailTaken:
        return "exists"
    finally:
        await engine.dispose()


def _persistent_secret(path: Path, prefix: str) -> str:
    """A secret generated once for this data folder, so restarts and sibling processes agree."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(18)
    path.write_text(value)
    path.chmod(0o600)
    return value


def cmd_migrate(args: argparse.Namespace) -> None:
    from server.services import services

    with services(_settings(), start=True) as settings:
        _migrate(settings)
        print("migrations applied")


def cmd_seed(args: argparse.Namespace) -> None:
    from server.services import services

    with services(_settings(), start=True) as settings:
        _migrate(settings)
        added = asyncio.run(_seed(settings))
        print(f"demo catalogue: {added} products added")


def cmd_user_create(args: argparse.Namespace) -> None:
    from db.errors import InvalidInput
    from resolvers import validate
    from server.services import services

    try:
        email = validate.email(args.email)
        password = validate.password(args.password)
    except InvalidInput as exc:
        raise SystemExit(f"{exc.field}: {exc.message}") from None
    with services(_settings(), start=True) as settings:
        _migrate(settings)
        outcome = asyncio.run(_ensure_user(settings, email, password, args.staff))
    if outcome == "exists":
        raise SystemExit(f"an account for {email} already exists")
    print(f"{'staff' if args.staff else 'customer'} account {email} created")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from server.services import services
    from server.timeouts import DeadlineProtocol

    with services(_settings(), start=False) as settings:
        os.environ.update(
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            PAYMENT_WEBHOOK_SECRET=settings.payment_webhook_secret,
        )
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Set before any worker imports prometheus_client, so all processes share their samples.
            metrics_dir = Path(settings.rushcart_data_dir) / "metrics" / f"serve-{args.port}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
            lifespan="on",
            # uvicorn's own protocol with deadlines for a request's headers and body (server/timeouts.py).
            http=DeadlineProtocol,
            # Client addresses from X-Forwarded-For only behind a proxy the operator named.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            ws_per_message_deflate=settings.ws_deflate,
        )


def cmd_worker(args: argparse.Namespace) -> None:
    from server.services import services
    from server.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with services(_settings(), start=False) as settings:
        run_worker(settings, burst=args.burst)


async def _pay(settings: Settings, order_id: str, succeeded: bool, amount: int | None, url: str) -> str:
    import httpx

    from server.payment_provider import event_body
    from server.state import close_state, open_state
    from server.webhooks import SIGNATURE_HEADER, sign

    state = open_state(settings)
    try:
        order = await state.orders.get(order_id, None)
    finally:
        await close_state(state)
    if order is None:
        raise SystemExit(f"no order {order_id}")
    body = event_body(order, succeeded, amount)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{url.rstrip('/')}/webhooks/payments",
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(settings.payment_webhook_secret, body)},
        )
    return f"{response.status_code} {response.text}"


def cmd_pay(args: argparse.Namespace) -> None:
    from server.services import api_url, services

    with services(_settings(), start=False) as settings:
        if settings.secret_generated:
            raise SystemExit("PAYMENT_WEBHOOK_SECRET is not set and no `rushcart dev` is running")
        url = args.url or api_url(settings)
        print(asyncio.run(_pay(settings, args.order_id, not args.fail, args.amount, url)))


def cmd_dev(args: argparse.Namespace) -> None:
    from server.services import client_url, forget_services, record_services, services

    base = _settings()
    data_dir = Path(base.rushcart_data_dir)
    if base.secret_generated:
        secret = _persistent_secret(data_dir / "webhook_secret", "whsec_dev_")
        os.environ["PAYMENT_WEBHOOK_SECRET"] = secret
        base = _settings()
    staff_password = _persistent_secret(data_dir / "staff_password", "")
    with services(base, start=True, cluster=args.cluster) as settings:
        _migrate(settings)
        added = asyncio.run(_seed(settings))
        asyncio.run(_ensure_user(settings, STAFF_EMAIL, staff_password, True))
        url = settings.public_base_url or client_url(args.host, args.port)
        record_services(settings, settings.payment_webhook_secret, url)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "PAYMENT_WEBHOOK_SECRET": settings.payment_webhook_secret,
        }
        if settings.redis_cluster:
            env.update(REDIS_CLUSTER="true", QUEUE_REDIS_URL=settings.queue_redis_url)
        rushcart = [sys.executable, "-m", "server"]
        children = [
            subprocess.Popen([*rushcart, "serve", "--host", args.host, "--port", str(args.port)], env=env),
            subprocess.Popen([*rushcart, "worker"], env=env),
        ]
        print(
            "\n".join(
                [
                    "",
                    "rushcart is running (Ctrl-C stops everything):",
                    f"  storefront demo   {url}/",
                    f"  GraphiQL          {url}/graphql",
                    f"  staff account     {STAFF_EMAIL} / {staff_password}",
                    f"  webhook secret    {settings.payment_webhook_secret}",
                    f"  PostgreSQL        {settings.database_url}",
                    f"  Redis             {settings.redis_url}"
                    + (f" (a cluster; queues on {settings.queue_redis_url})" if settings.redis_cluster else ""),
                    f"  demo products     {added} added" if added else "  demo products     already there",
                    "",
                ]
            ),
            flush=True,
        )
        stopping = False

        def _stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.2)
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
            forget_services(settings)
    print("rushcart stopped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rushcart", description="Storefront backend for flash sales.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="embedded services, migrations, demo data, API and worker")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--cluster", action="store_true",
                     help="the state Redis a local 3-primary + 3-replica Valkey Cluster (started empty), "
                          "RQ's queues on a server of their own")
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="the API only")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="an RQ worker with the periodic jobs")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.set_defaults(func=cmd_worker)

    pay = sub.add_parser("pay", help="send a signed payment event for an order to a running server")
    pay.add_argument("order_id")
    pay.add_argument("--fail", action="store_true", help="send payment.failed instead of payment.succeeded")
    pay.add_argument("--amount", type=int, help="amount in cents (default: the order's total)")
    pay.add_argument("--url", help="server base URL (default: PUBLIC_BASE_URL, else where a running "
                                   "`rushcart dev` serves, else http://127.0.0.1:8000)")
    pay.set_defaults(func=cmd_pay)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed", help="insert the demo catalogue").set_defaults(func=cmd_seed)

    user = sub.add_parser("user", help="accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", help="create a customer or staff account")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--staff", action="store_true")
    create.set_defaults(func=cmd_user_create)
    return parser


def main(argv: list[str] | None = None) -> None:
    from server.embedded import EmbeddedError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EmbeddedError as exc:
        # Its message says what to do (read a log, install the extra, set a URL); a traceback would bury it.
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
