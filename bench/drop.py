"""The drop part of the benchmark: a crowd many times the units through a drop's waiting line.

Three measurements, each on a fresh product and drop (admitted buyers buy one unit each),
shoppers from `processes` crowd processes of their own (bench.drop_crowd),
each a guest session with its own graphql-transport-ws connection, as browsers are:

1. the sale alone: as many shoppers as units, arriving over `seconds` after the start: every one
   is admitted and buys; no crowd waits;
2. the same sale with the crowd: `shoppers` arriving over the same seconds, on the same API
   processes; the admitted buy, the rest wait and are told when the units are gone;
3. the line at rest on one fresh API process: `crowd` shoppers join and stay subscribed to a line
   that admits slowly and never sells out: memory per subscribed shopper and how late each
   position update arrives.

What is compared and how it is read:
- placeOrder latency of the admitted buyers, alone and with the crowd (sent to answered);
- every HTTP answer of the sale (joins and orders) by outcome: requests/s, the API's typed
  refusals per second, 5xx (must be 0);
- sell-out: the send time of the last accepted order (no unit was left after it was answered, and
  every accepted order was sent before the last unit went, so this errs towards a longer delay);
  then for every shopper subscribed and waiting at that moment, when they were told SOLD_OUT or
  LIKELY_SOLD_OUT (a shopper told LIKELY_SOLD_OUT before the sell-out counts as told at once);
- fairness: Kendall's tau between the order shoppers sent `joinDrop` in (after the start) and
  their place in the line, which is the order the line admits in (the rank, read from Redis after
  the sale). Requests in flight at once may reach the server in either order, which alone keeps
  tau a little under 1;
- a position update's delay: its receipt time minus the time Redis published the line's state it
  was worked out from (the state is found by the admitted count the position implies, with the
  shopper's rank, and the line length and units left the event carries).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench.live import rss_mb
from bench.report import fmt, percentile
from bench.seed import Buyer, GraphQL, SeedError, create_product
from bench.stack import ROOT, BenchStack, StackError
from db import keys

# The line at rest: never sold out, admitting slowly, so that every waiting shopper hears a new
# position about once a second for as long as it is watched.
AT_REST_UNITS = 1_000_000
AT_REST_ADMIT_PER_SECOND = 20.0
GOAL_TOLD_S = 1.0
GOAL_TAU = 0.95
# Outcomes that are answers of the API, not failures: the line or the order refused with a typed code.
FAILURES = ("HTTP_", "TRANSPORT_", "GRAPHQL_ERROR", "BAD_ANSWER")
CREATE = ("mutation($i: DropInput!) { dropCreate(input: $i) { drop { id startsAt } errors { code message field } } }")


@dataclass(frozen=True)
class DropSetting:
    stack: BenchStack
    run_id: str
    sale_ports: list[int]  # the API processes the sales run on
    staff_token: str
    buyers: list[Buyer]
    shoppers: int
    units: int
    seconds: float  # arrivals spread over this long after the start
    admit_per_second: float
    pass_ttl_seconds: int
    processes: int  # crowd processes
    at_rest: int  # shoppers of the line at rest (0: skip that part)
    at_rest_seconds: float  # their arrivals spread over this long
    watch_seconds: float  # how long position updates are collected once all are subscribed


@dataclass
class Sale:
    shoppers: int
    units: int
    joins_over_s: float  # from the start until the last joinDrop was sent: the arrivals as the machine managed
    joined: int
    join_failed: int
    ws_errors: int
    admitted: int
    accepted: int
    units_sold: int
    order_p50_ms: float
    order_p99_ms: float
    requests: int
    window_s: float
    requests_per_s: float
    refused: dict[str, int]
    refused_per_s: float
    failed: dict[str, int]
    http_5xx: int
    sold_out_after_s: float | None  # from the drop's start
    waiting_at_sell_out: int
    told_before_sell_out: int
    told_p50_s: float
    told_max_s: float
    sold_out_told_max_s: float
    tau: float
    tau_shoppers: int


@dataclass
class AtRest:
    shoppers: int
    subscribed: int
    errors: int
    connect_s: float
    rss_before_mb: float
    rss_subscribed_mb: float
    rss_after_mb: float
    kb_per_shopper: float
    updates: int
    matched: int
    update_p50_ms: float
    update_p99_ms: float
    # The same for the updates received once every shopper was subscribed (the connects over).
    settled_updates: int
    settled_update_p50_ms: float
    settled_update_p99_ms: float


@dataclass
class DropRun:
    alone: Sale
    crowd: Sale
    at_rest: AtRest | None
    setting: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a of two rankings of the same items, in O(n log n): sort by `a`, then count the
    pairs `b` puts the other way round (inversions, by merge sort). Ties are not expected here
    (send times and ranks are distinct) and count as agreeing."""
    n = len(a)
    if n < 2:
        return math.nan
    seq = [y for _, y in sorted(zip(a, b, strict=True))]
    inversions = 0
    width = 1
    while width < n:
        merged: list[float] = []
        for lo in range(0, n, 2 * width):
            left, right = seq[lo:lo + width], seq[lo + width:lo + 2 * width]
            i = j = 0
            while i < len(left) and j < len(right):
                if right[j] < left[i]:
                    merged.append(right[j])
                    inversions += len(left) - i
                    j += 1
                else:
                    merged.append(left[i])
                    i += 1
            merged.extend(left[i:])
            merged.extend(right[j:])
        seq = merged
        width *= 2
    pairs = n * (n - 1) / 2
    return (pairs - 2 * inversions) / pairs


class Crowd:
    """The crowd processes of one measurement; every one of them is gone after kill()."""

    def __init__(self, work: Path, name: str) -> None:
        self.work = work
        self.name = name
        self.processes: list[asyncio.subprocess.Process] = []
        self.results: list[Path] = []

    async def open(self, ports: list[int], shoppers: int, seconds: float, processes: int, tokens: list[str],
                   buy: bool) -> None:
        """Start the processes; each starts its shoppers' sessions and says it is ready."""
        self.work.mkdir(parents=True, exist_ok=True)
        for p in range(min(processes, shoppers)):
            # Arrivals interleaved over the processes, evenly spaced over `seconds`.
            indices = list(range(p, shoppers, processes))
            spec = {"ports": ports, "indices": indices, "offsets": [i * seconds / shoppers for i in indices],
                    "tokens": tokens, "buy": buy}
            spec_file = self.work / f"{self.name}-{p}-spec.json"
            spec_file.write_text(json.dumps(spec))
            result = self.work / f"{self.name}-{p}-results.json"
            result.unlink(missing_ok=True)
            self.results.append(result)
            self.processes.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.drop_crowd", str(spec_file), str(result), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True))
        await self._lines("ready", 120 + shoppers / 20)

    async def go(self, t0: float, drop_id: int, product_id: int) -> None:
        line = json.dumps({"t0": t0, "drop_id": drop_id, "product_id": product_id}) + "\n"
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(line.encode())
            await process.stdin.drain()

    async def settled(self, timeout: float) -> float:
        """Wait until every shopper is settled; the time the last process said so."""
        return max(float(line["at"]) for line in await self._lines("settled", timeout))

    async def close(self) -> tuple[list[dict[str, Any]], list[tuple[float, str]]]:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        await self._lines("done", 180)
        shoppers: list[dict[str, Any]] = []
        answers: list[tuple[float, str]] = []
        for path in self.results:
            found = json.loads(path.read_text())
            shoppers.extend(found["shoppers"])
            answers.extend((float(t), str(o)) for t, o in found["answers"])
        return shoppers, answers

    async def _lines(self, key: str, timeout: float) -> list[dict[str, Any]]:
        async def one(process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdout is not None
            raw = await process.stdout.readline()
            if not raw:
                raise StackError(f"a drop crowd process exited with {await process.wait()} before '{key}'")
            line: dict[str, Any] = json.loads(raw)
            if key not in line:
                raise StackError(f"a drop crowd process said {line} instead of '{key}'")
            return line

        try:
            return list(await asyncio.wait_for(asyncio.gather(*(one(p) for p in self.processes)), timeout=timeout))
        except TimeoutError:
            raise StackError(f"the drop crowd was not '{key}' within {timeout:.0f}s") from None

    async def kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()


class Channel:
    """Every state the line publishes, with the time Redis made it (`at`)."""

    def __init__(self, redis_url: str, drop_id: int) -> None:
        self._redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self._channel = keys.drop_channel(drop_id)
        self.messages: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Channel:
        pubsub = self._redis.pubsub()
        # The line publishes on sharded pub/sub (SPUBLISH), as every event of the service.
        await pubsub.ssubscribe(self._channel)

        async def read() -> None:
            try:
                async for message in pubsub.listen():
                    if message["type"] == "smessage":
                        self.messages.append(json.loads(message["data"]))
            finally:
                await pubsub.aclose()

        self._task = asyncio.create_task(read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._redis.aclose()

    async def ranks(self, drop_id: int) -> dict[str, int]:
        members = await self._redis.zrange(keys.drop_line(drop_id), 0, -1)
        return {m.removeprefix("s:"): i for i, m in enumerate(members)}


async def _drop_for(api: GraphQL, token: str, sku: str, units: int, admit_per_second: float, pass_ttl: int,
                    starts_in: float) -> tuple[int, int, float]:
    """A fresh product and its drop: (product id, drop id, start as unix time)."""
    # No maxPerCustomer: the crowd's orders share the registered buyers' tokens (the pass is the
    # session's); the line counts an admitted shopper as buying one unit.
    product = await create_product(api, token, sku, units, None)
    starts = datetime.now(UTC) + timedelta(seconds=starts_in)
    data = await api(CREATE, token, i={"name": f"Drop {sku}", "startsAt": starts.isoformat(),
                                       "productIds": [str(product)], "admitPerSecond": admit_per_second,
                                       "passTtlSeconds": pass_ttl})
    payload = data["dropCreate"]
    if payload["errors"]:
        raise SeedError(f"dropCreate: {payload['errors']}")
    return product, int(payload["drop"]["id"]), datetime.fromisoformat(payload["drop"]["startsAt"]).timestamp()


async def _available(api: GraphQL, product: int) -> int:
    data = await api("query($id: ID!) { product(id: $id) { available } }", id=str(product))
    return int(data["product"]["available"])


def _is_failure(outcome: str) -> bool:
    return outcome.startswith(FAILURES)


async def run_sale(s: DropSetting, name: str, shoppers: int, say: Callable[[str], None]) -> Sale:
    url = f"http://127.0.0.1:{s.sale_ports[0]}/graphql"
    crowd = Crowd(s.stack.data_dir / "runs", name)
    try:
        await crowd.open(s.sale_ports, shoppers, s.seconds, s.processes, [b.token for b in s.buyers], buy=True)
        async with httpx.AsyncClient(timeout=60) as client:
            api = GraphQL(client, url)
            # The start a little ahead, so that every crowd process has its go before the first arrival.
            product, drop_id, starts = await _drop_for(api, s.staff_token, f"DROP-{s.run_id}-{name}", s.units,
                                                       s.admit_per_second, s.pass_ttl_seconds, starts_in=1.5)
            async with Channel(s.stack.redis_url, drop_id) as channel:
                await crowd.go(starts + 0.05, drop_id, product)
                settled_at = await crowd.settled(120 + shoppers / 20)
                ranks = await channel.ranks(drop_id)
                records, answers = await crowd.close()
            units_sold = s.units - await _available(api, product)
    finally:
        await crowd.kill()
    sale = _sale_figures(s, shoppers, starts, settled_at, records, answers, ranks, units_sold)
    say(f"  {name}: {sale.accepted} bought of {shoppers:,} shoppers, placeOrder p50 {sale.order_p50_ms:.0f} ms, "
        f"p99 {sale.order_p99_ms:.0f} ms, 5xx {sale.http_5xx}, told within {fmt(sale.told_max_s, 2)} s, "
        f"tau {fmt(sale.tau, 3)}")
    return sale


def _sale_figures(s: DropSetting, shoppers: int, starts: float, settled_at: float, records: list[dict[str, Any]],
                  answers: list[tuple[float, str]], ranks: dict[str, int], units_sold: int) -> Sale:
    joined = [r for r in records if r["join_outcome"] == "OK"]
    orders = [r for r in records if r["order_outcome"]]
    accepted = [r for r in orders if r["order_outcome"] == "OK"]
    latencies = [(r["order_done"] - r["order_sent"]) * 1000 for r in accepted]
    window = max(settled_at, max((t for t, _ in answers), default=starts)) - starts
    outcomes = Counter(o for _, o in answers)
    refused = {o: n for o, n in outcomes.items() if o != "OK" and not _is_failure(o)}
    failed = {o: n for o, n in outcomes.items() if _is_failure(o)}
    http_5xx = sum(n for o, n in outcomes.items() if o.startswith("HTTP_5"))
    sold_out = max((r["order_sent"] for r in accepted), default=None) if units_sold >= s.units else None
    waiting: list[dict[str, Any]] = []
    if sold_out is not None:
        waiting = [r for r in joined if not r["admitted"] and r["subscribed"] and r["subscribed"] <= sold_out]
    told = [max(0.0, r["told"] - sold_out) if r["told"] else math.inf for r in waiting] if sold_out else []
    told_sold_out = [r["sold_out"] - sold_out if r["sold_out"] else math.inf for r in waiting] if sold_out else []
    after_start = [r for r in joined if r["join_sent"] >= starts and r["sid"] in ranks]
    tau = kendall_tau([r["join_sent"] for r in after_start], [ranks[r["sid"]] for r in after_start])
    return Sale(
        shoppers=shoppers, units=s.units, joins_over_s=max((r["join_sent"] for r in records), default=starts) - starts,
        joined=len(joined), join_failed=len(records) - len(joined),
        ws_errors=sum(1 for r in records if r["ws_error"]), admitted=sum(1 for r in records if r["admitted"]),
        accepted=len(accepted), units_sold=units_sold,
        order_p50_ms=percentile(latencies, 50), order_p99_ms=percentile(latencies, 99),
        requests=len(answers), window_s=window, requests_per_s=len(answers) / window if window > 0 else math.nan,
        refused=refused, refused_per_s=sum(refused.values()) / window if window > 0 else math.nan, failed=failed,
        http_5xx=http_5xx, sold_out_after_s=None if sold_out is None else sold_out - starts,
        waiting_at_sell_out=len(waiting), told_before_sell_out=sum(1 for t in told if t == 0.0),
        told_p50_s=percentile(told, 50), told_max_s=max(told, default=math.nan),
        sold_out_told_max_s=max(told_sold_out, default=math.nan),
        tau=tau, tau_shoppers=len(after_start),
    )


async def run_at_rest(s: DropSetting, say: Callable[[str], None]) -> AtRest:
    """`at_rest` shoppers subscribed on one fresh API process while the line admits slowly."""
    server = s.stack.start_server("droprest-0")
    crowd = Crowd(s.stack.data_dir / "runs", "drop-at-rest")
    url = f"http://127.0.0.1:{server.port}/graphql"
    try:
        # Nobody buys here: the tokens are only there for the spec's shape.
        await crowd.open([server.port], s.at_rest, s.at_rest_seconds, s.processes, [s.buyers[0].token], buy=False)
        async with httpx.AsyncClient(timeout=60) as client:
            api = GraphQL(client, url)
            product, drop_id, starts = await _drop_for(api, s.staff_token, f"DROP-{s.run_id}-rest", AT_REST_UNITS,
                                                       AT_REST_ADMIT_PER_SECOND, 3600, starts_in=1.5)
        rss_before = rss_mb(server.process.pid)
        async with Channel(s.stack.redis_url, drop_id) as channel:
            await crowd.go(starts + 0.05, drop_id, product)
            settled_at = await crowd.settled(180 + s.at_rest / 20)
            rss_subscribed = rss_mb(server.process.pid)
            say(f"  {s.at_rest:,} shoppers subscribed after {settled_at - starts:.1f}s; "
                f"API RSS {rss_before:.0f} -> {rss_subscribed:.0f} MB; watching {s.watch_seconds:g}s of updates")
            # The updates this part measures arrive meanwhile: a fixed stretch of the run, not a wait on a condition.
            await asyncio.sleep(s.watch_seconds)
            rss_after = rss_mb(server.process.pid)
            ranks = await channel.ranks(drop_id)
            records, _ = await crowd.close()
            messages = list(channel.messages)
    finally:
        await crowd.kill()
        s.stack.stop_child(server)
    subscribed = [r for r in records if r["subscribed"]]
    timed, updates = _update_delays(records, ranks, messages)
    delays = [d for _, d in timed]
    settled = [d for received, d in timed if received >= settled_at]
    return AtRest(
        shoppers=s.at_rest, subscribed=len(subscribed), errors=sum(1 for r in records if r["ws_error"]),
        connect_s=settled_at - starts, rss_before_mb=rss_before, rss_subscribed_mb=rss_subscribed,
        rss_after_mb=rss_after, kb_per_shopper=(rss_after - rss_before) * 1024 / max(1, len(subscribed)),
        updates=updates, matched=len(delays), update_p50_ms=percentile(delays, 50),
        update_p99_ms=percentile(delays, 99), settled_updates=len(settled),
        settled_update_p50_ms=percentile(settled, 50), settled_update_p99_ms=percentile(settled, 99),
    )


def _update_delays(records: list[dict[str, Any]], ranks: dict[str, int],
                   messages: list[dict[str, Any]]) -> tuple[list[tuple[float, float]], int]:
    """Each WAITING update's receipt time and delay (ms) behind the published state it was worked out
    from, and how many updates there were."""
    published: dict[tuple[int, int, int], list[float]] = {}
    for m in messages:
        if m.get("started") and not m.get("ended"):
            published.setdefault((int(m["admitted"]), int(m["lineLength"]), int(m["unitsLeft"])), []).append(
                float(m["at"]))
    delays: list[tuple[float, float]] = []
    updates = 0
    for r in records:
        rank = ranks.get(r["sid"])
        for received, status, position, length, units in r["updates"]:
            updates += 1
            if status != "WAITING" or position is None or rank is None:
                continue
            ats = [at for at in published.get((rank - position + 1, length, units), []) if at <= received * 1000]
            if ats:
                delays.append((received, received * 1000 - max(ats)))
    return delays, updates


async def measure(s: DropSetting, say: Callable[[str], None]) -> DropRun:
    say(f"drop: {s.units} units, the sale alone ({s.units} shoppers), then {s.shoppers:,} shoppers over "
        f"{s.seconds:g}s ({s.shoppers / s.units:.0f}x), admitting {s.admit_per_second:g}/s")
    alone = await run_sale(s, "drop-alone", s.units, say)
    crowd = await run_sale(s, "drop-crowd", s.shoppers, say)
    at_rest = None
    if s.at_rest:
        say(f"drop: {s.at_rest:,} shoppers subscribed to a line on one API process")
        at_rest = await run_at_rest(s, say)
    setting = {
        "shoppers": s.shoppers, "units": s.units, "seconds": s.seconds, "admit_per_second": s.admit_per_second,
        "pass_ttl_seconds": s.pass_ttl_seconds, "processes": s.processes, "at_rest": s.at_rest,
        "at_rest_seconds": s.at_rest_seconds, "watch_seconds": s.watch_seconds, "api_processes": len(s.sale_ports)}
    return DropRun(alone, crowd, at_rest, setting)


SALE_ROWS: list[tuple[str, str, int]] = [
    ("shoppers", "shoppers", 0),
    ("joins sent over (s)", "joins_over_s", 1),
    ("joined", "joined", 0),
    ("admitted", "admitted", 0),
    ("bought (units sold)", "units_sold", 0),
    ("placeOrder p50 (ms)", "order_p50_ms", 1),
    ("placeOrder p99 (ms)", "order_p99_ms", 1),
    ("requests (joins and orders)", "requests", 0),
    ("requests/s", "requests_per_s", 0),
    ("refused by the API /s", "refused_per_s", 1),
    ("5xx", "http_5xx", 0),
    ("other failures", "other_failures", 0),
    ("subscriptions broken", "ws_errors", 0),
    ("sold out after the start (s)", "sold_out_after_s", 2),
    ("waiting and subscribed at sell-out", "waiting_at_sell_out", 0),
    ("  of which told before it", "told_before_sell_out", 0),
    ("  all told SOLD_OUT / LIKELY within (s)", "told_max_s", 2),
    ("  all told SOLD_OUT within (s)", "sold_out_told_max_s", 2),
    ("Kendall's tau, arrival vs line order", "tau", 3),
    ("  over post-start joiners", "tau_shoppers", 0),
]


def _sale_value(sale: Sale, path: str) -> float:
    if path == "other_failures":
        return float(sum(sale.failed.values()) - sale.http_5xx)
    value = getattr(sale, path)
    return math.nan if value is None else float(value)


def section(run: DropRun) -> list[str]:
    st = run.setting
    width = max(len(label) for label, _, _ in SALE_ROWS) + 1
    lines = [f"drop: {st['units']} units, arrivals over {st['seconds']:g}s after the start, admitting "
             f"{st['admit_per_second']:g} shoppers/s, {st['api_processes']} API processes, {st['processes']} crowd "
             "processes (guest sessions, one WebSocket each):",
             f"{'':<{width}}{'alone':>12}{'crowd':>12}"]
    for label, path, digits in SALE_ROWS:
        lines.append(f"{label:<{width}}" + "".join(f"{fmt(_sale_value(x, path), digits):>12}"
                                                  for x in (run.alone, run.crowd)))
    c, a = run.crowd, run.alone
    ratio = c.order_p99_ms / a.order_p99_ms if a.order_p99_ms > 0 else math.nan
    refused = ", ".join(f"{code} {n:,}" for code, n in sorted(c.refused.items())) or "none"
    lines.append(f"crowd {c.shoppers / max(1, c.units):.0f}x: placeOrder p99 {fmt(ratio, 2)}x alone; refused: "
                 f"{refused}; told within {fmt(c.told_max_s, 2)} s (goal < {GOAL_TOLD_S:g} s: "
                 f"{'met' if c.told_max_s < GOAL_TOLD_S else 'not met'}); tau {fmt(c.tau, 3)} (goal > {GOAL_TAU:g}: "
                 f"{'met' if c.tau > GOAL_TAU else 'not met'})")
    r = run.at_rest
    if r is not None:
        lines.append(f"line at rest on one API process: {r.subscribed:,} of {r.shoppers:,} shoppers subscribed in "
                     f"{r.connect_s:.1f}s ({r.errors} errors); RSS {r.rss_before_mb:.0f} -> {r.rss_after_mb:.0f} MB, "
                     f"{r.kb_per_shopper:.1f} KB per shopper; {r.updates:,} position updates ({r.matched:,} matched "
                     f"to their state), delay p50 {fmt(r.update_p50_ms, 0)} ms, p99 {fmt(r.update_p99_ms, 0)} ms; "
                     f"once all were subscribed {r.settled_updates:,} updates, delay p50 "
                     f"{fmt(r.settled_update_p50_ms, 0)} ms, p99 {fmt(r.settled_update_p99_ms, 0)} ms")
    return lines


def violations(run: DropRun | None) -> list[str]:
    """What fails the run: a 5xx, an oversold drop."""
    if run is None:
        return []
    problems = []
    for name, sale in (("alone", run.alone), ("crowd", run.crowd)):
        if sale.http_5xx:
            problems.append(f"drop {name}: {sale.http_5xx} answers were 5xx")
        if sale.units_sold > sale.units or sale.accepted > sale.units:
            problems.append(f"drop {name}: {sale.units_sold} units sold, {sale.accepted} orders, of {sale.units}")
    return problems
