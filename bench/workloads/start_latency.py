"""W3 start latency: ``POST process/all`` to the first ``processing:started``
frame on a WebSocket client, with a warm child and cold, beside the floor.

The server runs in this process (``engine.testing.open_test_server``) so that
each warm run can wait until the spare child is ready again
(``Engine.wait_warm``), which no HTTP call exposes; the HTTP and WebSocket
clients are the same wire clients as elsewhere. No extra job modules are
loaded, so a child imports what a production child imports.

The floor is the cold start of a process: ``trio.run_process`` of
``python -c "import trio"``, timed from the call to its exit.

Each run also records the arrival of the job's ``job:progress`` ``active``
frame: the latency of one job from ``process/all`` to its start, which is
what the peers' single-job latency measures (enqueue to handler start).

Each series records the CPU seconds of the bench process and its children
over all its runs (``bench.cpu``), per 1,000 jobs (one job per run): the
engine, each run's child start (a cold one, or the warm spare's
replacement), and the bench's own light HTTP and WebSocket clients, which
share the engine's process here.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import trio

from bench.context import Context
from bench.cpu import per_thousand_jobs, tree_cpu_seconds
from bench.live.client import Api, open_api, open_events
from bench.model import Result
from bench.stats import percentile
from engine.config.settings import RateLimit
from engine.core.engine import Engine
from engine.testing import open_test_server

__all__ = ["measure_floor", "w3_start_latency"]

_RUN_TIMEOUT = 30.0


async def _one_run(engine: Engine, api: Api, ws_url: str) -> tuple[float, float]:
    batch_id = await api.create_batch("noop", [{}])
    await engine.wait_warm()
    async with open_events(ws_url, batch_id) as events:
        began = time.monotonic()
        await api.process_all(batch_id)
        started = job_active = None
        with trio.fail_after(_RUN_TIMEOUT):
            for frame in await events.until_end(batch_id):
                if frame.event == "processing:started" and started is None:
                    started = frame.arrived - began
                if frame.data.get("status") == "active" and job_active is None:
                    job_active = frame.arrived - began
    if started is None or job_active is None:
        raise RuntimeError(f"batch {batch_id} ended without its start frames")
    return started, job_active


async def _series(ctx: Context, warm: int, runs: int) -> tuple[list[float], list[float], float]:
    workdir = ctx.workdir / f"w3-warm{warm}"
    workdir.mkdir(exist_ok=True)
    server = open_test_server(
        workdir,
        store_url=ctx.store_url(f"w3-warm{warm}"),
        warm_children=warm,
        job_modules=(),
        rate_limit=RateLimit(count=0, per_seconds=60),
    )
    starts: list[float] = []
    actives: list[float] = []
    async with server as (engine, url), open_api(url) as api:
        ws_url = "ws" + url.removeprefix("http")
        cpu_before = tree_cpu_seconds(os.getpid())
        for _ in range(runs):
            started, active = await _one_run(engine, api, ws_url)
            starts.append(started)
            actives.append(active)
        cpu_used = tree_cpu_seconds(os.getpid()) - cpu_before
    return starts, actives, cpu_used


async def measure_floor(runs: int) -> list[float]:
    """Seconds for each of ``runs`` cold starts of ``python -c "import trio"``."""
    times = []
    for _ in range(runs):
        began = time.monotonic()
        await trio.run_process([sys.executable, "-c", "import trio"])
        times.append(time.monotonic() - began)
    return times


def _ms(values: list[float], p: float) -> float | None:
    value = percentile(values, p)
    return None if value is None else value * 1000


def _result(
    system: str,
    config: str,
    starts: list[float],
    actives: list[float],
    cpu_seconds: float | None = None,
) -> Result:
    metrics: dict[str, float | int | None] = {
        "runs": len(starts),
        "p50_ms": _ms(starts, 50),
        "p99_ms": _ms(starts, 99),
    }
    if cpu_seconds is not None:
        metrics |= {
            "engine_cpu_seconds": cpu_seconds,
            "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(cpu_seconds, len(starts)),
        }
    if actives:
        metrics |= {"job_start_p50_ms": _ms(actives, 50), "job_start_p99_ms": _ms(actives, 99)}
    samples = {"start_ms": [s * 1000 for s in starts]}
    if actives:
        samples["job_start_ms"] = [s * 1000 for s in actives]
    return Result(workload="W3", system=system, config=config, metrics=metrics, samples=samples)


async def w3_start_latency(ctx: Context) -> list[Result]:
    """The warm series, the cold series and the floor."""
    runs = ctx.sizes.w3_runs
    floor = await measure_floor(runs)
    warm_starts, warm_actives, warm_cpu = await _series(ctx, 1, runs)
    cold_starts, cold_actives, cold_cpu = await _series(ctx, 0, runs)
    where = f"served in the bench process, {ctx.store_name} store, 1-job noop batch per run"
    floor_result = _result(
        "floor: process start",
        f"trio.run_process of {Path(sys.executable).name} -c 'import trio', to its exit",
        floor,
        [],
    )
    return [
        _result(
            "batchyard (warm child)",
            f"WARM_CHILDREN=1, {where}",
            warm_starts,
            warm_actives,
            warm_cpu,
        ),
        _result(
            "batchyard (cold)", f"WARM_CHILDREN=0, {where}", cold_starts, cold_actives, cold_cpu
        ),
        floor_result,
    ]
