"""What must hold after a sale has drained; each check names what it compared.

`accepted` is every order a client was answered with (warm-up included); `uncertain` is every
request whose fate the client could not learn (a transport error, a timeout, a 5xx): such a
request may or may not have bought, so the checks allow for exactly that many extra orders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from bench.seed import Sale
from db import keys
from db.state_redis import mget


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


class Checked:
    """A measured run with its invariant checks (mixed into the runs' dataclasses)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}  # type: ignore[call-overload]  # subclasses are dataclasses


def _mismatches(want: dict[int, int], got: dict[int, int]) -> str:
    return ", ".join(f"product {pid}: expected {want.get(pid, 0)}, found {got.get(pid, 0)}"
                     for pid in sorted(set(want) | set(got)) if want.get(pid, 0) != got.get(pid, 0))


async def check_sale(pg: asyncpg.Pool, redis: Any, sale: Sale, accepted: Sequence[tuple[str, int, int]],
                     uncertain: Sequence[tuple[int, int]], redis_counters: bool) -> list[Check]:
    pids = sorted(sale.stock)
    ids = [oid for oid, _, _ in accepted]
    units: dict[int, int] = defaultdict(int)
    asked: dict[str, tuple[int, int]] = {}
    for oid, pid, qty in accepted:
        units[pid] += qty
        asked[oid] = (pid, qty)
    slack: dict[int, int] = defaultdict(int)
    for pid, qty in uncertain:
        slack[pid] += qty

    rows = await pg.fetch("SELECT product_id, stock FROM product_stock WHERE product_id = ANY($1)", pids)
    stock = {r["product_id"]: r["stock"] for r in rows}
    removed = {pid: sale.stock[pid] - stock.get(pid, sale.stock[pid]) for pid in pids}
    copies = {str(r["id"]): (r["n"], r["status"]) for r in await pg.fetch(
        "SELECT id, count(*) AS n, min(status) AS status FROM orders WHERE id = ANY($1::uuid[]) GROUP BY id", ids)}
    items = await pg.fetch(
        "SELECT order_id::text AS oid, product_id, quantity FROM order_items WHERE product_id = ANY($1)", pids)
    sold: dict[int, int] = defaultdict(int)
    for item in items:
        sold[item["product_id"]] += item["quantity"]
    strangers = {item["oid"] for item in items} - set(asked)
    wrong_items = sorted(oid for oid, found in _items_by_order(items).items()
                         if oid in asked and found != [asked[oid]])

    checks = [
        Check("no negative stock", all(v >= 0 for v in stock.values()),
              ", ".join(f"product {p}: {v}" for p, v in stock.items() if v < 0)),
        _units_check("units accepted == units removed from product_stock", dict(units), removed, slack),
        Check("every accepted order in PostgreSQL exactly once",
              len(copies) == len(ids) and all(n == 1 for n, _ in copies.values()),
              f"{len(ids) - len(copies)} missing, {sum(1 for n, _ in copies.values() if n > 1)} duplicated"),
        Check("accepted orders still PENDING (nothing expired or cancelled)",
              all(status == "PENDING" for _, status in copies.values()),
              f"{sum(1 for _, s in copies.values() if s != 'PENDING')} not PENDING"),
        Check("no order in PostgreSQL that no client was answered with", len(strangers) <= len(uncertain),
              f"{len(strangers)} unknown orders, {len(uncertain)} uncertain requests"),
        Check("order_items match what each accepted order asked for", not wrong_items,
              f"{len(wrong_items)} orders differ, e.g. {wrong_items[:3]}"),
        _units_check("order_items units per product == units accepted", dict(units), dict(sold), slack),
        Check("order_items units per product <= initial stock", all(sold[p] <= sale.stock[p] for p in pids),
              ", ".join(f"product {p}: {sold[p]} > {sale.stock[p]}" for p in pids if sold[p] > sale.stock[p])),
    ]
    if redis_counters:
        checks += await _redis_checks(redis, pids, stock)
    return checks


def _items_by_order(items: Sequence[Any]) -> dict[str, list[tuple[int, int]]]:
    by_order: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for item in items:
        by_order[item["oid"]].append((item["product_id"], item["quantity"]))
    return by_order


def _units_check(name: str, want: dict[int, int], got: dict[int, int], slack: dict[int, int]) -> Check:
    # An uncertain request may have bought its units, or not: both are correct.
    bad = {pid for pid in set(want) | set(got)
           if not want.get(pid, 0) <= got.get(pid, 0) <= want.get(pid, 0) + slack.get(pid, 0)}
    return Check(name, not bad, _mismatches({p: want.get(p, 0) for p in bad}, {p: got.get(p, 0) for p in bad}))


async def _redis_checks(redis: Any, pids: list[int], stock: dict[int, int]) -> list[Check]:
    counters = await mget(redis, [keys.stock(pid) for pid in pids])
    held = await mget(redis, [keys.stock_held(pid) for pid in pids])
    counter = {pid: int(v) if v is not None else -1 for pid, v in zip(pids, counters, strict=True)}
    holding = {pid: int(v or 0) for pid, v in zip(pids, held, strict=True)}
    return [
        Check("Redis stock:{pid} == product_stock.stock", counter == stock, _mismatches(stock, counter)),
        Check("Redis stock:held:{pid} == 0 (nothing held after the drain)", not any(holding.values()),
              _mismatches(dict.fromkeys(pids, 0), holding)),
    ]
