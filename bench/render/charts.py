"""PNG charts of a run, drawn with matplotlib when it can be imported.

* ``throughput.png``: W1 no-op jobs/s and W2 efficiency per system;
* ``latency.png``: the distribution of start latencies (W3) per system;
* ``fanout.png``: W6 delivery latency (p50, p99) against subscribers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.model import Result

__all__ = ["can_draw", "draw_charts"]


def can_draw() -> bool:
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def _ok(results: Sequence[Result], workload: str, metric: str) -> list[Result]:
    return [
        r
        for r in results
        if r.workload == workload and r.status == "ok" and r.metric(metric) is not None
    ]


def _bars(axes: Any, results: list[Result], metric: str, title: str, label: str) -> None:
    ordered = sorted(results, key=lambda r: r.metric(metric) or 0.0)
    names = [r.system for r in ordered]
    values = [r.metric(metric) or 0.0 for r in ordered]
    colors = ["tab:green" if n.startswith("batchyard") else "tab:gray" for n in names]
    axes.barh(names, values, color=colors)
    axes.set_title(title)
    axes.set_xlabel(label)
    for y, value in enumerate(values):
        axes.text(value, y, f" {value:,.2f}" if value < 10 else f" {value:,.0f}", va="center")


def _throughput(plt: Any, results: Sequence[Result], path: Path) -> bool:
    if not _ok(results, "W1", "jobs_per_second") and not _ok(results, "W2", "efficiency"):
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    _bars(left, _ok(results, "W1", "jobs_per_second"), "jobs_per_second", "W1 no-op", "jobs/s")
    _bars(right, _ok(results, "W2", "efficiency"), "efficiency", "W2 sleep 10 ms", "efficiency")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def _latency(plt: Any, results: Sequence[Result], path: Path) -> bool:
    series = []
    for result in results:
        if result.workload != "W3" or result.status != "ok":
            continue
        for key, what in (("start_ms", "started"), ("job_start_ms", "job start")):
            samples = result.samples.get(key)
            if samples:
                series.append((f"{result.system}: {what}", samples))
    if not series:
        return False
    figure, axes = plt.subplots(figsize=(11, 0.45 * len(series) + 1.5))
    axes.boxplot([s for _, s in series], vert=False, whis=(1, 99), showfliers=True)
    axes.set_yticks(range(1, len(series) + 1), [name for name, _ in series])
    axes.set_xscale("log")
    axes.set_xlabel("ms (log scale; whiskers p1-p99)")
    axes.set_title("W3 start latency")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def _fanout(plt: Any, results: Sequence[Result], path: Path) -> bool:
    runs = sorted(_ok(results, "W6", "p99_ms"), key=lambda r: r.metric("subscribers") or 0)
    if not runs:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.5))
    counts = [r.metric("subscribers") or 0 for r in runs]
    for metric, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        axes.plot(counts, [r.metric(metric) or 0 for r in runs], marker="o", label=label)
    for run, count in zip(runs, counts, strict=True):
        jobs = run.metric("jobs")
        if jobs is not None:
            axes.annotate(
                f"{jobs:,.0f} jobs",
                (count, run.metric("p99_ms") or 0),
                ha="center",
                xytext=(0, 8),
                textcoords="offset points",
            )
    axes.axhline(100, color="tab:red", linestyle="--", label="target p99 100 ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("WebSocket subscribers")
    axes.set_ylabel("delivery latency, ms")
    axes.set_title("W6 fan-out")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def draw_charts(results: Sequence[Result], out: Path) -> tuple[str, ...]:
    """Draw every chart that has data into ``out``; the file names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    for name, draw in (
        ("throughput.png", _throughput),
        ("latency.png", _latency),
        ("fanout.png", _fanout),
    ):
        if draw(plt, results, out / name):
            drawn.append(name)
        plt.close("all")
    return tuple(drawn)
