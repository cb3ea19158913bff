"""The flash-sale benchmark: `python -m bench.run` (what `make bench` runs); `--help` lists the knobs.

One run: a fresh stack (bench.stack), buyers registered through the API (bench.seed), then for
each round and each variant (bench.variant) a fresh sale, a burst from a separate load process
(bench.load), the drain of the persistence backlog (bench.drain) and the invariant check
(bench.invariants); then a crowd of stock watchers on one API process while a sale runs on it
(bench.live); then a burst of payment webhooks, each order's owner waiting for PAID on an
orderStatus subscription (bench.payments); then a drop's waiting line under a crowd many times
its units (bench.drop); then, with the servers and workers stopped, batched persistence against one
transaction per order (bench.persistence); at the end the table, the ratios (bench.report),
bench/results/<timestamp>.json and its plot beside it (bench.plot). Exit status 1 on any
violation, 2 if the stack failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import httpx

from bench import drop, live, payments, persistence, plot, report
from bench.seed import STAFF_EMAIL, STAFF_PASSWORD, Buyer, GraphQL, SeedError, register_buyers, staff_token
from bench.stack import ROOT, BenchStack, StackError
from bench.variant import Setting, run_variant
from server.embedded import EmbeddedError

VARIANTS = ("rushcart", "ceiling", "baseline")
RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=15, help="seconds of load per variant")
    p.add_argument("--requests", type=int, default=0, help="requests per variant instead of --duration (0: off)")
    p.add_argument("--warmup", type=float, default=1, help="seconds of load on a separate product first (0: none)")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (one connection each)")
    p.add_argument("--processes", type=int, default=2, help="API server processes per variant")
    p.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    p.add_argument("--buyers", type=int, default=200, help="registered buyers (argon2: ~0.1 s of CPU each)")
    p.add_argument("--products", type=int, default=5, help="products in each sale")
    p.add_argument("--stock", type=int, default=2000, help="units of each product")
    p.add_argument("--max-per-customer", type=int, default=0, help="purchase limit per buyer and product (0: none)")
    p.add_argument("--max-quantity", type=int, default=2, help="units per order: 1 to this")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--rounds", type=int, default=1, help="repeat every variant; the table shows medians")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="HTTP client of the load generator")
    p.add_argument("--answer", choices=("persisted", "minimal", "lines"), default="persisted",
                   help="how GraphQL variants ask: the PlaceOrder persisted operation by documentId, or the "
                        "document text selecting the order's id, status, total (as the ceiling), or also its lines")
    p.add_argument("--register-concurrency", type=int, default=8, help="registrations in flight")
    p.add_argument("--timeout", type=float, default=30, help="seconds before a request counts as failed")
    p.add_argument("--drain-timeout", type=float, default=120, help="seconds to wait for the backlog to drain")
    p.add_argument("--live", default="1000",
                   help="productStock watchers on one API process during a sale, comma-separated crowd sizes "
                        "(1000,5000,10000 for the full run; 0: skip that part)")
    p.add_argument("--live-duration", type=float, default=8, help="seconds of the live sale, alone and watched")
    p.add_argument("--live-rate", type=float, default=200,
                   help="requests/s of the live sale, paced (0: as fast as the process answers)")
    p.add_argument("--live-concurrency", type=int, default=16, help="connections of the live sale")
    p.add_argument("--live-processes", type=int, default=2, help="processes the watchers are spread over")
    p.add_argument("--payments", type=int, default=2000,
                   help="orders paid by a burst of signed webhooks, each watched by its owner's orderStatus "
                        "subscription (0: skip that part)")
    p.add_argument("--payments-concurrency", type=int, default=100, help="webhooks of the burst in flight")
    p.add_argument("--payments-processes", type=int, default=2,
                   help="processes the orderStatus subscribers are spread over")
    p.add_argument("--drop-shoppers", type=int, default=6000,
                   help="shoppers of the drop part, arriving over --drop-seconds for --drop-units (0: skip the part)")
    p.add_argument("--drop-units", type=int, default=300, help="units of the drop")
    p.add_argument("--drop-seconds", type=float, default=5, help="seconds the drop's shoppers arrive over")
    p.add_argument("--drop-admit-rate", type=float, default=100, help="the drop's admitPerSecond")
    p.add_argument("--drop-pass-ttl", type=int, default=120, help="the drop's passTtlSeconds")
    p.add_argument("--drop-processes", type=int, default=2, help="processes the drop's shoppers are spread over")
    p.add_argument("--drop-at-rest", type=int, default=10000,
                   help="shoppers subscribed to a slow line on one API process: memory and update delay (0: skip)")
    p.add_argument("--drop-at-rest-seconds", type=float, default=20, help="seconds those shoppers arrive over")
    p.add_argument("--drop-watch-seconds", type=float, default=10, help="seconds of position updates collected")
    p.add_argument("--persistence-orders", type=int, default=5000,
                   help="orders persisted batched and then one transaction each, after the variants (0: skip)")
    p.add_argument("--appendfsync", choices=("everysec", "always"), default="always",
                   help="the state Redis' AOF fsync policy: always loses no acknowledged write to a machine crash")
    p.add_argument("--cluster", action="store_true",
                   help="the state on a 3-primary + 3-replica Valkey Cluster (RQ's queues on a server of their own); "
                        "sell one product (--products 1) to load one hot shard")
    p.add_argument("--wait-replicas", type=int, default=0,
                   help="REDIS_WAIT_REPLICAS with --cluster: every order step confirmed by this many replicas")
    p.add_argument("--seed", type=int, default=0, help="random seed of the load (0: a fresh one, kept in the JSON)")
    p.add_argument("--data-dir", type=Path,
                   default=Path(os.environ.get("RUSHCART_DATA_DIR") or ROOT / ".data") / "bench",
                   help="where the embedded PostgreSQL and Redis and the logs live (wiped each run)")
    args = p.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown or not args.variant_list:
        p.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    for name in ("concurrency", "processes", "buyers", "products", "stock", "max_quantity", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        args.live_sizes = live.parse_sizes(args.live)
    except ValueError as exc:
        p.error(f"--live: {exc}")
    if args.live_concurrency < 1 or args.live_processes < 1:
        p.error("--live-concurrency and --live-processes must be at least 1")
    if args.drop_shoppers < 0 or args.drop_at_rest < 0:
        p.error("--drop-shoppers and --drop-at-rest must be 0 (skip) or more")
    if args.drop_shoppers and (args.drop_units < 1 or args.drop_seconds <= 0 or args.drop_admit_rate <= 0
                               or args.drop_processes < 1):
        p.error("--drop-units, --drop-seconds, --drop-admit-rate and --drop-processes must be above 0")
    if args.persistence_orders < 0:
        p.error("--persistence-orders must be 0 (skip) or more")
    if args.payments < 0:
        p.error("--payments must be 0 (skip) or more")
    if args.payments_concurrency < 1 or args.payments_processes < 1:
        p.error("--payments-concurrency and --payments-processes must be at least 1")
    if args.workers < 1 and {"rushcart", "ceiling"} & set(args.variant_list):
        p.error("--workers must be at least 1: rushcart and ceiling persist through the workers")
    if args.cluster:
        # The cluster run is the sale alone, rushcart against the ceiling: the row-lock baseline and
        # the other parts measure the one-node stack.
        args.variant_list = [v for v in args.variant_list if v != "baseline"] or ["rushcart", "ceiling"]
        args.live_sizes, args.payments, args.drop_shoppers, args.persistence_orders = [], 0, 0, 0
    elif args.wait_replicas:
        p.error("--wait-replicas needs --cluster (the one-node stack has no replica)")
    args.seed = args.seed or random.randrange(1, 1 << 30)
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def prepare(api_urls: list[str], args: argparse.Namespace, run_id: str) -> tuple[str, list[Buyer]]:
    async with httpx.AsyncClient(timeout=60) as client:
        apis = [GraphQL(client, url) for url in api_urls]
        token = await staff_token(apis[0])
        started = time.monotonic()
        buyers = await register_buyers(apis, args.buyers, f"buyer-{run_id}", args.register_concurrency)
        say(f"registered {len(buyers)} buyers in {time.monotonic() - started:.1f}s")
    return token, buyers


def _stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    # The same clean-up path as Ctrl-C: `finally` stops every process this run started.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    stack = BenchStack(args.data_dir)
    runs: list[report.VariantRun] = []
    persisted: persistence.PersistenceRun | None = None
    lives: list[live.LiveRun] = []
    live_setting: live.LiveSetting | None = None
    paid: payments.PaymentRun | None = None
    dropped: drop.DropRun | None = None
    try:
        where = (f"a 3+3 Valkey Cluster, REDIS_WAIT_REPLICAS={args.wait_replicas}," if args.cluster else "Redis")
        say(f"bench {run_id}: PostgreSQL and {where} (appendfsync {args.appendfsync}) under {args.data_dir}")
        stack.start_storage(args.appendfsync, cluster=args.cluster, wait_replicas=args.wait_replicas)
        stack.run_cli("user", "create", "--email", STAFF_EMAIL, "--password", STAFF_PASSWORD, "--staff")
        servers = ["rushcart", *(v for v in args.variant_list if v != "rushcart")]
        say(f"starting {args.processes} server processes each for {', '.join(servers)} and {args.workers} workers")
        ports = stack.start_servers(servers, args.processes)
        stack.start_workers(args.workers)
        staff, buyers = asyncio.run(
            prepare([f"http://127.0.0.1:{p}/graphql" for p in ports["rushcart"]], args, run_id))
        setting = Setting(
            stack=stack, run_id=run_id, ports=ports, staff_token=staff, buyers=buyers, products=args.products,
            stock=args.stock, max_per_customer=args.max_per_customer or None, max_quantity=args.max_quantity,
            duration=args.duration, requests=args.requests, warmup=args.warmup, concurrency=args.concurrency,
            timeout=args.timeout, drain_timeout=args.drain_timeout, client=args.client, answer=args.answer,
            seed=args.seed,
        )
        for round_ in range(args.rounds):
            # Variants interleaved round by round, so that a slow minute hurts all of them alike.
            for variant in args.variant_list:
                run = asyncio.run(run_variant(setting, variant, round_))
                say(f"  {variant}: {run.requests_per_s:,.0f} req/s (per second: {report.spread(run)}), "
                    f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
                    f"drain {report.fmt(run.drain_s, 2)} s, invariants {'ok' if run.ok else 'VIOLATED'}")
                runs.append(run)
        if args.live_sizes:
            live_setting = live.LiveSetting(
                stack=stack, run_id=run_id, graphql_url=f"http://127.0.0.1:{ports['rushcart'][0]}/graphql",
                staff_token=staff, buyers=buyers, duration=args.live_duration, concurrency=args.live_concurrency,
                rate=args.live_rate,
                watcher_processes=args.live_processes, max_quantity=args.max_quantity, seed=args.seed)
            lives = measure_live(live_setting, args.live_sizes)
        if args.payments:
            paid = measure_payments(stack, args, run_id, ports["rushcart"], staff, buyers)
        if args.drop_shoppers:
            dropped = asyncio.run(drop.measure(drop.DropSetting(
                stack=stack, run_id=run_id, sale_ports=ports["rushcart"], staff_token=staff, buyers=buyers,
                shoppers=args.drop_shoppers, units=args.drop_units, seconds=args.drop_seconds,
                admit_per_second=args.drop_admit_rate, pass_ttl_seconds=args.drop_pass_ttl,
                processes=args.drop_processes, at_rest=args.drop_at_rest,
                at_rest_seconds=args.drop_at_rest_seconds, watch_seconds=args.drop_watch_seconds), say))
        if args.persistence_orders:
            persisted = measure_persistence(stack, args, run_id, ports, staff, buyers)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except (StackError, SeedError, EmbeddedError) as exc:
        say(f"bench failed: {exc} (logs in {stack.log_dir})")
        return 2
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return finish(args, run_id, runs, persisted, lives, live_setting, paid, dropped)


def measure_live(setting: live.LiveSetting, sizes: list[int]) -> list[live.LiveRun]:
    found = []
    for count in sizes:
        say(f"live: {count:,} productStock watchers on one API process during a sale")
        run = asyncio.run(live.measure(setting, count, say))
        say(f"  delivery p50 {run.delivery_p50_ms:,.0f} ms, p99 {run.delivery_p99_ms:,.0f} ms, "
            f"{run.kb_per_watcher:.1f} KB per watcher, sale p99 {run.alone.p99_ms:.1f} ms alone, "
            f"{run.watched.p99_ms:.1f} ms watched")
        found.append(run)
    return found


def measure_payments(stack: BenchStack, args: argparse.Namespace, run_id: str, ports: list[int], staff: str,
                     buyers: list[Buyer]) -> payments.PaymentRun:
    say(f"payments: {args.payments:,} orders, each owner subscribed to orderStatus, then a webhook each at once")
    setting = payments.PaymentSetting(
        stack=stack, run_id=run_id, ports=ports, staff_token=staff, buyers=buyers, webhooks=args.payments,
        concurrency=args.payments_concurrency, subscriber_processes=args.payments_processes,
        timeout=args.drain_timeout)
    run = asyncio.run(payments.measure(setting, say))
    say(f"  202 p99 {run.accept_p99_ms:,.0f} ms; PAID delivered {run.delivered:,} of {run.webhooks:,}, "
        f"p50 {run.delivered_p50_ms:,.0f} ms, p99 {run.delivered_p99_ms:,.0f} ms from the 202; "
        f"invariants {'ok' if run.ok else 'VIOLATED'}")
    return run


def measure_persistence(stack: BenchStack, args: argparse.Namespace, run_id: str, ports: dict[str, list[int]],
                        staff: str, buyers: list[Buyer]) -> persistence.PersistenceRun:
    say(f"persistence: {args.persistence_orders:,} orders, batched and then one transaction each")
    sales = asyncio.run(persistence.create_sales(
        f"http://127.0.0.1:{ports['rushcart'][0]}/graphql", staff, f"BENCH-{run_id}-persist", args.products,
        persistence.stock_needed(args.persistence_orders, args.max_quantity)))
    # Only the side being measured may persist these orders: no worker, no sweeper.
    stack.stop_children()
    found = asyncio.run(persistence.measure(stack, sales, buyers, args.persistence_orders, args.max_quantity,
                                            args.seed, f"{run_id}-persist"))
    ok = found.batched.ok and found.single.ok
    say(f"  persistence: batched {found.batched.orders_per_s:,.0f} orders/s, single "
        f"{found.single.orders_per_s:,.0f} orders/s, {report.fmt(found.ratio, 1)}x, "
        f"invariants {'ok' if ok else 'VIOLATED'}")
    return found


def finish(args: argparse.Namespace, run_id: str, runs: list[report.VariantRun],
           persisted: persistence.PersistenceRun | None, lives: list[live.LiveRun],
           live_setting: live.LiveSetting | None, paid: payments.PaymentRun | None,
           dropped: drop.DropRun | None = None) -> int:
    found = report.ratios(runs, args.variant_list)
    limit = args.max_per_customer or "none"
    load = f"{args.requests} requests" if args.requests else f"{args.duration:g}s"
    header = (f"flash sale: {args.products} products x {args.stock} units (limit per buyer: {limit}), "
              f"{args.buyers} buyers, concurrency {args.concurrency}, {args.processes} API processes, "
              f"{args.workers} workers, {load} per variant, {args.rounds} round(s), appendfsync {args.appendfsync}"
              f"{' (medians)' if args.rounds > 1 else ''}")
    print(f"\n{header}\n")
    print(report.table(runs, args.variant_list))
    print()
    for line in report.ratio_lines(found):
        print(line)
    if lives and live_setting is not None:
        print()
        for line in live.section(lives, live_setting):
            print(line)
    if paid is not None:
        print()
        for line in payments.section(paid):
            print(line)
    if dropped is not None:
        print()
        for line in drop.section(dropped):
            print(line)
    if persisted is not None:
        print()
        for line in persistence.section(persisted):
            print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{run_id}.json"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    path.write_text(json.dumps({
        "run_id": run_id, "settings": settings,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": [r.to_json() for r in runs], "ratios": found,
        "persistence": None if persisted is None else persisted.to_json(),
        "live": [r.to_json() for r in lives],
        "payments": None if paid is None else paid.to_json(),
        "drop": None if dropped is None else dropped.to_json(),
    }, indent=1))
    print(f"\nresults: {path.relative_to(ROOT)}")
    picture = path.with_suffix(".png")
    try:
        plot.write(runs, args.variant_list, picture, f"{run_id}  {header}")
    except plot.Unavailable as exc:
        # The figures are all in the JSON and the table; a missing picture fails nothing.
        say(f"no plot: {exc}")
    else:
        print(f"plot: {picture.relative_to(ROOT)}")
    problems = (report.violations(runs) + persistence.violations(persisted) + live.violations(lives)
                + payments.violations(paid) + drop.violations(dropped))
    for problem in problems:
        print(f"INVARIANT VIOLATED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
