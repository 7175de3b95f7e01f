"""BullMQ, through node: installed on first use into ``bench/.node`` (git-ignored).

The measurements are made by ``bench/peers/bullmq/bench.mjs`` (producer and
in-process worker in one node process) and turned into the same results as
the Python peers'.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.live.server import REPO
from bench.model import Result, failed, skipped
from bench.peers.base import QUICK_SKIP, flushed_client
from bench.repeat import median_run
from bench.workloads.rate import rate_metrics, rate_notes

__all__ = ["NODE_DIR", "name", "run", "version"]

name = "bullmq"
NODE_DIR = REPO / "bench" / ".node"
_SOURCE = Path(__file__).with_name("bullmq")
_WORKLOADS = ("W1", "W2", "W4", "W3")
_INSTALL_TIMEOUT = 300


def version() -> str | None:
    """The installed BullMQ version, None when it is not installed."""
    manifest = NODE_DIR / "node_modules" / "bullmq" / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def _install() -> str | None:
    """Install BullMQ and ioredis when missing; the reason when impossible."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm not found"
    if version() is not None:
        return None
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(_SOURCE / "package.json", NODE_DIR / "package.json")
    try:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=_INSTALL_TIMEOUT,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"npm install failed: {exc}"
    return None if version() is not None else "npm install left no bullmq"


def _node(ctx: Context, **config: Any) -> dict[str, Any]:
    flushed_client(ctx.redis_url)
    config |= {"nodeDir": str(NODE_DIR), "redisUrl": ctx.redis_url, "queue": "bench"}
    answer = subprocess.run(
        ["node", str(_SOURCE / "bench.mjs"), json.dumps(config)],
        check=True,
        capture_output=True,
        timeout=600,
        text=True,
    )
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


def _describe(concurrency: int) -> str:
    return (
        f"BullMQ {version()} in-process Worker, concurrency {concurrency}, "
        "removeOnComplete, ioredis"
    )


def _w1(ctx: Context) -> Result:
    """The median of ``w1_w2_runs`` runs (``bench.repeat``)."""
    return median_run([_w1_run(ctx) for _ in range(ctx.sizes.w1_w2_runs)])


def _w1_run(ctx: Context) -> Result:
    jobs, concurrency = ctx.sizes.w1_jobs, ctx.sizes.w1_concurrency
    answer = _node(ctx, mode="drain", jobs=jobs, concurrency=concurrency, seconds=0)
    return Result(
        workload="W1",
        system=name,
        config=_describe(concurrency),
        metrics={
            "jobs": jobs,
            "jobs_per_second": jobs / answer["seconds"],
            "seconds": answer["seconds"],
            "submit_seconds": answer["submitSeconds"],
            "submit_jobs_per_second": jobs / answer["submitSeconds"],
        },
    )


def _w2(ctx: Context) -> Result:
    """The median of ``w1_w2_runs`` runs (``bench.repeat``)."""
    runs = [_w2_run(ctx) for _ in range(ctx.sizes.w1_w2_runs)]
    return median_run(runs, "efficiency")


def _w2_run(ctx: Context) -> Result:
    sizes = ctx.sizes
    answer = _node(
        ctx,
        mode="drain",
        jobs=sizes.w2_jobs,
        concurrency=sizes.w2_concurrency,
        seconds=sizes.w2_sleep_seconds,
    )
    ideal = sizes.w2_jobs * sizes.w2_sleep_seconds / sizes.w2_concurrency
    return Result(
        workload="W2",
        system=name,
        config=_describe(sizes.w2_concurrency),
        metrics={
            "jobs": sizes.w2_jobs,
            "seconds": answer["seconds"],
            "ideal_seconds": ideal,
            "efficiency": ideal / answer["seconds"],
            "jobs_per_second": sizes.w2_jobs / answer["seconds"],
        },
    )


def _w4(ctx: Context) -> Result:
    sizes = ctx.sizes
    answer = _node(
        ctx,
        mode="drain",
        jobs=sizes.w4_jobs,
        concurrency=sizes.w1_concurrency,
        seconds=0,
        limit=sizes.w4_limit,
        windowMs=sizes.w4_window_seconds * 1000,
    )
    starts = [float(t) for t in answer["starts"]]
    metrics = rate_metrics(starts, sizes.w4_limit, sizes.w4_window_seconds)
    limiter = f"limiter {{max: {sizes.w4_limit}, duration: {sizes.w4_window_seconds * 1000:g}}}"
    return Result(
        workload="W4",
        system=name,
        config=f"{limiter}; {_describe(sizes.w1_concurrency)}",
        metrics=metrics,
        samples={"starts_s": sorted(t - min(starts) for t in starts)},
        notes=rate_notes(metrics),
    )


def _latency(ctx: Context) -> Result:
    concurrency = ctx.sizes.w1_concurrency
    answer = _node(ctx, mode="latency", runs=ctx.sizes.latency_runs, concurrency=concurrency)
    latencies = [float(ms) for ms in answer["latenciesMs"]]
    from bench.stats import percentile

    return Result(
        workload="W3",
        system=name,
        config=f"single job, add() to processor start on an idle worker; {_describe(concurrency)}",
        metrics={
            "runs": len(latencies),
            "job_start_p50_ms": percentile(latencies, 50),
            "job_start_p99_ms": percentile(latencies, 99),
        },
        samples={"job_start_ms": latencies},
    )


def run(ctx: Context) -> list[Result]:
    """Every BullMQ measurement, or every one skipped with the reason."""
    reason = _install()
    if reason is not None:
        return [skipped(workload, name, reason) for workload in _WORKLOADS]
    results = []
    for workload, measure in zip(_WORKLOADS, (_w1, _w2, _w4, _latency), strict=True):
        if ctx.quick and workload in ("W2", "W4"):
            results.append(skipped(workload, name, QUICK_SKIP))
            continue
        try:
            results.append(measure(ctx))
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
            results.append(failed(workload, name, f"{type(exc).__name__}: {exc}"))
    return results
