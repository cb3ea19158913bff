"""Figures of one variant's run, the table that compares variants, and the ratios between them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.invariants import Check, Checked
from bench.load import ACCEPTED, is_uncertain


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class VariantRun(Checked):
    variant: str
    round: int
    requests: int
    elapsed_s: float
    requests_per_s: float
    accepted: int
    accepted_per_s: float
    # Accepted orders over the time until the last one was answered: the buying rate while the
    # sale could still sell, not diluted by the cheap refusals after a sell-out.
    accepted_per_s_while_selling: float
    sold_out_after_s: float | None
    units_sold: int
    units_offered: int
    rejected: int  # refused with a typed error (OUT_OF_STOCK, ...)
    rejected_per_s: float
    outcomes: dict[str, int]
    uncertain: int  # no usable answer (transport error, timeout, 5xx): failures
    p50_ms: float
    p95_ms: float
    p99_ms: float
    accepted_p50_ms: float
    accepted_p99_ms: float
    per_second: list[dict[str, int]]
    drain_s: float | None
    caught_up_s: float | None  # from the last accepted answer until the backlog was empty
    backlog_peak: int
    load_cpu_pct: float  # of one core, taken by the load generator
    # CPU per request (warm-up included) of the variant's server processes and of Redis, and the
    # workers' CPU over the load: what each variant costs the machine, whatever else runs on it.
    server_cpu_us: float
    redis_cpu_us: float
    worker_cpu_s: float
    checks: list[Check] = field(default_factory=list)
    # The busiest state primary (on a cluster selling one product, the hot product's shard), per
    # accepted order: µs inside script calls (INFO commandstats) and µs of its process' CPU.
    hot_shard_script_us: float | None = None
    hot_shard_cpu_us: float | None = None


def summarise(variant: str, round_: int, load: dict[str, Any], sale_units: int, units_sold: int,
              drain_s: float | None, caught_up_s: float | None, backlog_peak: int,
              checks: list[Check], server_cpu_s: float, redis_cpu_s: float, worker_cpu_s: float,
              shards: list[tuple[float, float]] | None = None) -> VariantRun:
    outcomes: dict[str, int] = load["outcomes"]
    elapsed = float(load["elapsed"])
    accepted = outcomes.get(ACCEPTED, 0)
    uncertain = sum(n for code, n in outcomes.items() if is_uncertain(code))
    rejected = sum(n for code, n in outcomes.items() if code != ACCEPTED) - uncertain
    last_accept = load["last_accept_s"]
    latencies, accepted_latencies = load["latencies_ms"], load["accepted_latencies_ms"]
    return VariantRun(
        variant=variant,
        round=round_,
        requests=load["requests"],
        elapsed_s=elapsed,
        requests_per_s=load["requests"] / elapsed,
        accepted=accepted,
        accepted_per_s=accepted / elapsed,
        accepted_per_s_while_selling=accepted / (last_accept or elapsed),
        sold_out_after_s=last_accept if units_sold >= sale_units else None,
        units_sold=units_sold,
        units_offered=sale_units,
        rejected=rejected,
        rejected_per_s=rejected / elapsed,
        outcomes=outcomes,
        uncertain=uncertain,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        accepted_p50_ms=percentile(accepted_latencies, 50),
        accepted_p99_ms=percentile(accepted_latencies, 99),
        per_second=load["per_second"],
        drain_s=drain_s,
        caught_up_s=caught_up_s,
        backlog_peak=backlog_peak,
        load_cpu_pct=100 * float(load["cpu_s"]) / elapsed,
        server_cpu_us=1e6 * server_cpu_s / max(1, load["requests"] + load["warmup_requests"]),
        redis_cpu_us=1e6 * redis_cpu_s / max(1, load["requests"] + load["warmup_requests"]),
        worker_cpu_s=worker_cpu_s,
        checks=checks,
        hot_shard_script_us=1e6 * max(s for s, _ in shards) / max(1, accepted) if shards else None,
        hot_shard_cpu_us=1e6 * max(c for _, c in shards) / max(1, accepted) if shards else None,
    )


def _median(runs: list[VariantRun], get: Callable[[VariantRun], float | None]) -> float | None:
    values = [v for v in (get(r) for r in runs) if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def spread(run: VariantRun) -> str:
    """Requests per whole second of the run: min-median-max; a wide spread means a disturbed run."""
    counts = [b["accepted"] + b["rejected"] for b in run.per_second[:int(run.elapsed_s)]]
    if not counts:
        return "-"
    return f"{min(counts)}-{statistics.median(counts):.0f}-{max(counts)}"


ROWS: list[tuple[str, Callable[[VariantRun], float | None], int]] = [
    ("requests", lambda r: r.requests, 0),
    ("requests/s", lambda r: r.requests_per_s, 0),
    ("accepted orders", lambda r: r.accepted, 0),
    ("accepted/s (whole run)", lambda r: r.accepted_per_s, 0),
    ("accepted/s (until the last accept)", lambda r: r.accepted_per_s_while_selling, 0),
    ("units sold", lambda r: r.units_sold, 0),
    ("sold out after (s)", lambda r: r.sold_out_after_s, 1),
    ("rejected/s", lambda r: r.rejected_per_s, 0),
    ("failed requests (no usable answer)", lambda r: r.uncertain, 0),
    ("latency p50 (ms)", lambda r: r.p50_ms, 1),
    ("latency p95 (ms)", lambda r: r.p95_ms, 1),
    ("latency p99 (ms)", lambda r: r.p99_ms, 1),
    ("accepted latency p50 (ms)", lambda r: r.accepted_p50_ms, 1),
    ("accepted latency p99 (ms)", lambda r: r.accepted_p99_ms, 1),
    ("peak backlog (orders)", lambda r: r.backlog_peak, 0),
    ("drain after burst (s)", lambda r: r.drain_s, 2),
    ("backlog empty after last accept (s)", lambda r: r.caught_up_s, 2),
    ("load generator CPU (% of a core)", lambda r: r.load_cpu_pct, 0),
    ("API server CPU per request (us)", lambda r: r.server_cpu_us, 0),
    ("Redis CPU per request (us)", lambda r: r.redis_cpu_us, 0),
    # Per accepted order, the refusals' share included (a sold-out sale is mostly refusals).
    ("busiest Redis: us in scripts/accepted", lambda r: r.hot_shard_script_us, 1),
    ("busiest Redis: CPU us/accepted", lambda r: r.hot_shard_cpu_us, 1),
    ("worker CPU during the load (s)", lambda r: r.worker_cpu_s, 1),
]


def _outcome(code: str) -> Callable[[VariantRun], float | None]:
    return lambda r: r.outcomes.get(code, 0)


def table(runs: list[VariantRun], variants: list[str]) -> str:
    """One column per variant; with several rounds each cell is the median of the rounds."""
    by_variant = {v: [r for r in runs if r.variant == v] for v in variants}
    width = 34
    lines = [f"{'':<{width}}" + "".join(f"{v:>14}" for v in variants)]
    for label, get, digits in ROWS:
        cells = [fmt(_median(by_variant[v], get), digits) for v in variants]
        lines.append(f"{label:<{width}}" + "".join(f"{c:>14}" for c in cells))
    codes = sorted({code for r in runs for code in r.outcomes if code != ACCEPTED})
    for code in codes:
        cells = [fmt(_median(by_variant[v], _outcome(code)), 0) for v in variants]
        label = f"  {'failed' if is_uncertain(code) else 'rejected'} {code}"
        lines.append(f"{label:<{width}}" + "".join(f"{c:>14}" for c in cells))
    verdicts = ["ok" if all(r.ok for r in by_variant[v]) else "VIOLATED" for v in variants]
    lines.append(f"{'invariants':<{width}}" + "".join(f"{c:>14}" for c in verdicts))
    return "\n".join(lines)


RATIO_FIGURES: list[tuple[str, Callable[[VariantRun], float | None]]] = [
    ("requests/s", lambda r: r.requests_per_s),
    ("accepted/s until the last accept", lambda r: r.accepted_per_s_while_selling),
    ("latency p50", lambda r: r.p50_ms),
    ("latency p99", lambda r: r.p99_ms),
]


def ratios(runs: list[VariantRun], variants: list[str]) -> dict[str, dict[str, float | None]]:
    """rushcart / other, per figure: the median over rounds of each round's ratio. Variants of one
    round ran minutes apart at most, so a round's ratio cancels most of what the machine did."""
    out: dict[str, dict[str, float | None]] = {}
    mine = {r.round: r for r in runs if r.variant == "rushcart"}
    if not mine:
        return out
    for other in (v for v in variants if v != "rushcart"):
        pairs = [(mine[r.round], r) for r in runs if r.variant == other and r.round in mine]
        row: dict[str, float | None] = {}
        for label, get in RATIO_FIGURES:
            found = [a / b for a, b in ((get(m), get(t)) for m, t in pairs)
                     if a is not None and b and not math.isnan(a) and not math.isnan(b)]
            row[label] = statistics.median(found) if found else None
        out[other] = row
    return out


def ratio_lines(found: dict[str, dict[str, float | None]]) -> list[str]:
    lines = []
    for other, row in found.items():
        parts = [f"{label} {fmt(value, 2)}x" for label, value in row.items()]
        lines.append(f"rushcart / {other}: " + ", ".join(parts))
    if found:
        lines.append("(throughput ratios above 1 favour rushcart; latency ratios below 1 do)")
    return lines


def violations(runs: list[VariantRun]) -> list[str]:
    return [f"{r.variant} round {r.round + 1}: {c.name}: {c.detail}" for r in runs for c in r.checks if not c.ok]
