"""The demo's PNG: throughput and latency over time, and decisions by genre (matplotlib, Agg)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ChartData", "write_chart"]

DECISION_COLOURS = {
    "APPROVED": "#2e7d32",
    "REJECTED": "#c62828",
    "ESCALATED": "#ef6c00",
    "PENDING": "#9e9e9e",
}


class ChartData:
    """Times are wall-clock milliseconds (Kafka timestamps and produce times)."""

    def __init__(
        self,
        *,
        start_ms: int,
        published_ms: Sequence[int],
        outcome_ms: Sequence[int],
        latency: Sequence[tuple[int, float]],
        decisions_by_genre: Mapping[str, Counter[str]],
        title: str,
    ) -> None:
        self.start_ms = start_ms
        self.published_ms = published_ms
        self.outcome_ms = outcome_ms
        #: (produce time ms, produce -> ballot ms) per ballot
        self.latency = latency
        self.decisions_by_genre = decisions_by_genre
        self.title = title


def _per_second(times_ms: Sequence[int], start_ms: int, seconds: int) -> list[int]:
    bins = [0] * seconds
    for t in times_ms:
        i = int((t - start_ms) // 1000)
        if 0 <= i < seconds:
            bins[i] += 1
    return bins


def write_chart(data: ChartData, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    end_ms = max([*data.published_ms, *data.outcome_ms, data.start_ms + 1000])
    seconds = max(1, math.ceil((end_ms - data.start_ms) / 1000) + 1)
    xs = list(range(seconds))

    fig = plt.figure(figsize=(13, 8.5), dpi=110, constrained_layout=True)
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1])
    fig.suptitle(data.title, fontsize=13, fontweight="bold")

    # 1. votes per second: published vs processed (ballot or rejection emitted)
    ax = fig.add_subplot(grid[0, 0])
    published = _per_second(data.published_ms, data.start_ms, seconds)
    processed = _per_second(data.outcome_ms, data.start_ms, seconds)
    ax.step(
        xs, published, where="post", label="published (votes topic)", color="#1565c0", linewidth=1.6
    )
    ax.step(
        xs,
        processed,
        where="post",
        label="processed (ballot or rejection out)",
        color="#2e7d32",
        linewidth=1.6,
    )
    ax.set_title("Throughput")
    ax.set_xlabel("seconds since the first vote")
    ax.set_ylabel("votes / s")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    ax.set_ylim(0, max([*published, *processed, 1]) * 1.3)  # headroom for the legend

    # 2. produce -> ballot latency: every ballot as a dot, p50/p99 per second
    ax = fig.add_subplot(grid[0, 1])
    if data.latency:
        px = [(t - data.start_ms) / 1000 for t, _ in data.latency]
        py = [max(lat, 0.5) for _, lat in data.latency]
        ax.scatter(px, py, s=4, alpha=0.25, color="#6a1b9a", label="one ballot", linewidths=0)
        by_second: dict[int, list[float]] = {}
        for x, y in zip(px, py, strict=True):
            by_second.setdefault(int(x), []).append(y)
        secs = sorted(s for s, v in by_second.items() if len(v) >= 3)
        if secs:
            p50 = [statistics.median(by_second[s]) for s in secs]
            p99 = [statistics.quantiles(by_second[s], n=100, method="inclusive")[98] for s in secs]
            mid = [s + 0.5 for s in secs]
            ax.plot(mid, p50, color="#283593", linewidth=2, label="p50 per second")
            ax.plot(
                mid, p99, color="#d84315", linewidth=1.6, linestyle="--", label="p99 per second"
            )
        ax.set_yscale("log")
        all_lat = sorted(lat for _, lat in data.latency)
        overall = (
            f"overall p50 {statistics.median(all_lat):.0f} ms, "
            f"p99 {all_lat[min(len(all_lat) - 1, int(len(all_lat) * 0.99))]:.0f} ms"
        )
        ax.set_title(f"Produce → ballot latency ({overall})")
        ax.legend(loc="upper right", fontsize=9)
    else:
        ax.set_title("Produce → ballot latency (no ballots)")
    ax.set_xlabel("seconds since the first vote (produce time)")
    ax.set_ylabel("ms (log scale)")
    ax.set_xlim(0, seconds)
    ax.grid(alpha=0.3, which="both")

    # 3. decisions by genre, stacked
    ax = fig.add_subplot(grid[1, :])
    genres = sorted(data.decisions_by_genre)
    bottom = [0] * len(genres)
    for decision, colour in DECISION_COLOURS.items():
        heights = [data.decisions_by_genre[g].get(decision, 0) for g in genres]
        if not any(heights):
            continue
        bars = ax.bar(
            genres, heights, bottom=bottom, color=colour, label=decision.lower(), width=0.6
        )
        for bar, h in zip(bars, heights, strict=True):
            if h:
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_y() + h / 2,
                    str(h),
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=9,
                    fontweight="bold",
                )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_title("Decisions by genre (submissions, from Postgres)")
    ax.set_ylabel("submissions")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    ax.grid(axis="y", alpha=0.3)

    fig.savefig(path)
    plt.close(fig)
    return path
