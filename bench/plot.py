"""The run as a picture, bench/results/<run_id>.png beside the JSON: throughput per second of
each variant's timed phase, and its latency percentiles.

matplotlib comes with the `bench` extra, which `make bench` installs; the test suite goes without
it, so it is imported only here, when a picture is drawn, and a run without it skips the picture.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import VariantRun

ACCEPTED_COLOUR = "tab:green"
REQUESTS_COLOUR = "tab:blue"
PERCENTILES = (("p50", "#9ecae1"), ("p95", "#4292c6"), ("p99", "#08519c"))
# A last second shorter than this is left out: a few requests over a sliver of a second read as
# a spike or a cliff that never happened.
MIN_BUCKET_S = 0.5


class Unavailable(Exception):
    """matplotlib cannot be imported; the message says how to get it."""


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise Unavailable(f"matplotlib cannot be imported ({exc}); `make bench` installs it "
                          "(or: pip install -e '.[bench]')") from exc
    return Figure, FigureCanvasAgg, ticker


def rates(run: VariantRun) -> tuple[list[float], list[float], list[float]]:
    """Per second of the timed phase: its middle, accepted/s and requests/s. A last, partial
    second is scaled to a rate over the part that was measured."""
    xs: list[float] = []
    accepted: list[float] = []
    requests: list[float] = []
    for second, bucket in enumerate(run.per_second):
        span = min(1.0, run.elapsed_s - second)
        if span < MIN_BUCKET_S and (xs or span <= 0):
            continue
        xs.append(second + span / 2)
        accepted.append(bucket["accepted"] / span)
        requests.append((bucket["accepted"] + bucket["rejected"]) / span)
    return xs, accepted, requests


def _median_series(series: Sequence[list[float]]) -> list[float]:
    # Only as far as every round got, so the median never rests on one round's tail.
    length = min(len(s) for s in series)
    return [statistics.median(s[i] for s in series) for i in range(length)]


def _thousands(value: float, _position: int) -> str:
    return f"{value:,.0f}"


def _throughput(ax: Any, runs: list[VariantRun], variant: str, first: bool, ticker: Any) -> None:
    several = len(runs) > 1
    curves = [rates(r) for r in runs]
    if several:
        # Each round faintly, their per-second median bold: the spread shows how noisy it was.
        for xs, accepted, requests in curves:
            ax.plot(xs, requests, color=REQUESTS_COLOUR, alpha=0.25, linewidth=1)
            ax.plot(xs, accepted, color=ACCEPTED_COLOUR, alpha=0.25, linewidth=1)
        xs = min((c[0] for c in curves), key=len)
        accepted_line = _median_series([c[1] for c in curves])
        requests_line = _median_series([c[2] for c in curves])
    else:
        xs, accepted_line, requests_line = curves[0]
    # Accepted as a filled area and requests dashed on top: until a sell-out they are the same
    # figure, and neither line may hide the other.
    ax.fill_between(xs, accepted_line, color=ACCEPTED_COLOUR, alpha=0.2, linewidth=0)
    # Markers too: a run of a second or two has too few points for a line to show.
    ax.plot(xs, accepted_line, color=ACCEPTED_COLOUR, linewidth=2, marker="o", markersize=3, label="accepted/s")
    ax.plot(xs, requests_line, color=REQUESTS_COLOUR, linewidth=2, linestyle="--", marker="o", markersize=3,
            label="requests/s (all answers)")
    sold_out = [r.sold_out_after_s for r in runs]
    if runs and all(s is not None for s in sold_out):
        when = statistics.median(s for s in sold_out if s is not None)
        ax.axvline(when, color="grey", linestyle=":", linewidth=1.5, label="sold out")
        # Written on the side of the line with more room, so a late sell-out stays inside the panel.
        late = bool(xs) and when > 0.6 * max(xs)
        ax.annotate(f"sold out {when:.1f} s", (when, 1), xycoords=("data", "axes fraction"),
                    xytext=(-3 if late else 3, -4), textcoords="offset points", ha="right" if late else "left",
                    va="top", fontsize="small", color="dimgrey")
    ax.set_title(f"{variant}" + (f" (median of {len(runs)} rounds, rounds faint)" if several else ""))
    ax.set_xlabel("second of the timed phase")
    if first:
        ax.set_ylabel("per second")
    ax.set_xlim(0, max(r.elapsed_s for r in runs))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_thousands))
    ax.grid(alpha=0.3)


def _latency(ax: Any, runs: list[VariantRun], variants: list[str], ticker: Any) -> None:
    width = 0.8 / len(PERCENTILES)
    rounds = max(r.round for r in runs) + 1
    drawn: list[float] = []
    for k, (name, colour) in enumerate(PERCENTILES):
        for i, variant in enumerate(variants):
            values = [getattr(r, f"{name}_ms") for r in runs if r.variant == variant]
            values = [v for v in values if not math.isnan(v)]
            if not values:
                continue
            value = statistics.median(values)
            drawn.append(value)
            x = i + (k - (len(PERCENTILES) - 1) / 2) * width
            ax.bar(x, value, width, color=colour, label=name if i == 0 else None)
            ax.annotate(f"{value:,.1f}" if value < 10 else f"{value:,.0f}", (x, value), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize="small")
    ax.set_yscale("log")
    if drawn and min(drawn) > 0:
        # Bars start a factor of 2 under the smallest, so that on a narrow range the smallest
        # bar does not shrink to a sliver; room above the tallest for its label.
        ax.set_ylim(min(drawn) / 2, max(drawn) * 1.6)
    # Plain numbers (40, not 4 x 10^1); minor ticks labelled only when the range is narrow.
    ax.yaxis.set_major_formatter(ticker.LogFormatter())
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.set_xticks(range(len(variants)), variants)
    ax.set_xlim(-0.75, len(variants) - 0.25)
    ax.set_ylabel("ms per request (log scale)")
    ax.set_title("latency of every request as the client saw it" + (f" (median of {rounds} rounds)"
                                                                     if rounds > 1 else ""))
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize="small")


def write(runs: list[VariantRun], variants: list[str], path: Path, title: str) -> None:
    """Draw the runs into `path` (PNG); Unavailable if matplotlib cannot be imported."""
    figure_class, canvas_class, ticker = _matplotlib()
    shown = [v for v in variants if any(r.variant == v for r in runs)]
    if not shown:
        return
    width = max(10.0, 4.4 * len(shown))
    figure = figure_class(figsize=(width, 9.0), layout="constrained")
    # Agg explicitly and no pyplot: no display is needed and no global figure state is kept.
    canvas_class(figure)
    grid = figure.add_gridspec(2, len(shown), height_ratios=[3, 2])
    panels: list[Any] = []
    for i, variant in enumerate(shown):
        # One y scale for all variants, so the panels compare at a glance.
        ax = figure.add_subplot(grid[0, i], sharey=panels[0] if panels else None)
        _throughput(ax, [r for r in runs if r.variant == variant], variant, i == 0, ticker)
        panels.append(ax)
    # Only now, with every panel's data in: setting it earlier would freeze the first panel's top.
    panels[0].set_ylim(bottom=0)
    unique: dict[str, Any] = {}
    for ax in panels:
        handles, labels = ax.get_legend_handles_labels()
        unique |= {label: handle for label, handle in zip(labels, handles, strict=True) if label not in unique}
    # Below the panels: above them it would collide with the title.
    figure.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=len(unique), fontsize="small")
    _latency(figure.add_subplot(grid[1, :]), runs, shown, ticker)
    # Wrapped to the figure: a title wider than the figure would be cut at both ends.
    figure.suptitle(textwrap.fill(title, int(width * 13)), fontsize="medium")
    figure.savefig(path, dpi=100)
