"""W1 overhead and W2 I/O efficiency, on a served batchyard.

W1: ``w1_jobs`` no-op jobs in one batch at concurrency ``w1_concurrency``
without a rate limit, followed by one WebSocket watcher (so the serving of
~2 events per job to it is part of the engine's load), and separately the
submit time of the one ``POST /api/batches``. Beside it,
``bench.overhead`` runs the same batch on an engine in this process, with
no server and no watcher: what the engine itself costs per job.

The time of W1 and W2 is the peers' (``bench.peers.base``): from the first
job's start to the last job's end, here the first ``startedAt`` (the
child's wall clock as the handler starts) to the arrival at the watcher of
the last job's terminal ``job:progress``, which is later than the job's
end by the event's trip. Beside it, ``end_to_end_seconds`` runs from
``POST process/all`` to the ``done`` frame: the run's start and end on
top.

Both record the served engine's CPU seconds (its process and its children)
from ``process/all`` to the ``done`` frame, per 1,000 jobs: the cost of a
job apart from the wall time. It includes the start of the warm spare that
replaces the child the batch took.

W2: ``w2_jobs`` ``sleep`` jobs of ``w2_sleep_seconds`` at concurrency
``w2_concurrency``: wall time and efficiency = ideal / measured, where the
ideal is jobs x sleep / concurrency (0.2 s at the issue's sizes).

Each system's W1 and W2 are the median of ``w1_w2_runs`` runs, each on a
new server and store (``bench.repeat``).
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import trio

from bench import overhead
from bench.context import Context
from bench.cpu import per_thousand_jobs
from bench.live.client import Api, Frame, open_api, open_events
from bench.live.server import LiveServer, open_server
from bench.model import Result
from bench.repeat import median_run

__all__ = ["BatchRun", "run_batch", "w1_overhead", "w2_io_efficiency"]

#: The warm child starts with the engine; it is ready well within this.
_WARM_WAIT_SECONDS = 1.0


@attrs.frozen(kw_only=True)
class BatchRun:
    """One batch followed from ``process/all`` to its end."""

    #: Seconds for ``POST /api/batches``.
    submit_seconds: float
    #: Seconds from the first job's start to the arrival of the last
    #: job's terminal event.
    seconds: float
    #: Seconds from ``process/all`` to the arrival of the last frame.
    end_to_end_seconds: float
    #: CPU seconds of the served engine and its children from ``process/all``
    #: to the last frame (over ``end_to_end_seconds``: a little more than
    #: ``seconds``, so the CPU per job is an upper bound).
    engine_cpu_seconds: float
    frames: list[Frame]

    def metrics(self, jobs: int) -> dict[str, float | int | None]:
        """The numbers every batch run reports, by name."""
        last = self.frames[-1]
        return {
            "jobs": jobs,
            "seconds": self.seconds,
            "end_to_end_seconds": self.end_to_end_seconds,
            "jobs_per_second": jobs / self.seconds,
            "engine_cpu_seconds": self.engine_cpu_seconds,
            "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(self.engine_cpu_seconds, jobs),
            "completed": int(last.data.get("completed", 0)),
            "failed": int(last.data.get("failed", 0)),
            "frames": len(self.frames),
        }


async def run_batch(server: LiveServer, api: Api, type: str, payloads: list[Any]) -> BatchRun:
    """Submit one batch, process it, and follow it to its end over WebSocket."""
    began = time.monotonic()
    batch_id = await api.create_batch(type, payloads)
    submitted = time.monotonic() - began
    await trio.sleep(_WARM_WAIT_SECONDS)
    async with open_events(server.ws_url, batch_id) as events:
        cpu_before = server.cpu_seconds()
        began, began_wall = time.monotonic(), time.time()
        await api.process_all(batch_id)
        frames = await events.until_end(batch_id)
        cpu_used = server.cpu_seconds() - cpu_before
    jobs = [frame for frame in frames if frame.event == "job:progress"]
    starts = [float(f.data["startedAt"]) for f in jobs if "startedAt" in f.data]
    if not starts:
        raise RuntimeError(f"batch {batch_id}: no job:progress frame carried a startedAt")
    first_start = min(starts)
    last_end = max(f.arrived for f in jobs if f.data["status"] in ("completed", "failed"))
    return BatchRun(
        submit_seconds=submitted,
        seconds=last_end - (began + first_start - began_wall),
        end_to_end_seconds=frames[-1].arrived - began,
        engine_cpu_seconds=cpu_used,
        frames=frames,
    )


async def w1_overhead(ctx: Context) -> list[Result]:
    """W1 on a served engine, then on an engine in this process; each the
    median of ``w1_w2_runs`` runs (``bench.repeat``)."""
    runs = range(1, ctx.sizes.w1_w2_runs + 1)
    served = [await _w1_served(ctx, run) for run in runs]
    alone = [await _w1_engine_only(ctx, run) for run in runs]
    return [median_run(served), median_run(alone)]


async def _w1_served(ctx: Context, run: int) -> Result:
    """One W1 run on a served engine with its watcher, on a fresh store."""
    sizes = ctx.sizes
    jobs = sizes.w1_jobs
    await ctx.fresh_store()
    environment = ctx.server_env(
        f"w1-{run}",
        EMBEDDING_CONCURRENCY=sizes.w1_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w1_batch_size,
        EMBEDDING_RATE_LIMIT=0,
        WARM_CHILDREN=1,
    )
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        batch = await run_batch(server, api, "noop", [{}] * jobs)
    config = (
        f"batchyard serve, 1 child, concurrency {sizes.w1_concurrency}, claims of "
        f"{sizes.w1_batch_size}, no rate limit, warm child, {ctx.store_name} store; "
        "followed by a WebSocket watcher"
    )
    return Result(
        workload="W1",
        system="batchyard",
        config=config,
        metrics={
            **batch.metrics(jobs),
            "submit_seconds": batch.submit_seconds,
            "submit_jobs_per_second": jobs / batch.submit_seconds,
        },
    )


async def _w1_engine_only(ctx: Context, run: int) -> Result:
    """One W1 run on an engine in this process, on a fresh store."""
    sizes = ctx.sizes
    jobs = sizes.w1_jobs
    await ctx.fresh_store()
    alone = await overhead.measure(
        jobs, sizes.w1_concurrency, sizes.w1_batch_size, ctx.store_url(f"w1-engine-{run}")
    )
    return Result(
        workload="W1",
        system="batchyard (engine only)",
        config=(
            f"open_engine in the bench process, no server, no watcher; concurrency "
            f"{sizes.w1_concurrency}, claims of {sizes.w1_batch_size}, {ctx.store_name} store"
        ),
        metrics={
            "jobs": jobs,
            "jobs_per_second": jobs / alone.seconds,
            "seconds": alone.seconds,
            "submit_seconds": alone.submit_seconds,
            "submit_jobs_per_second": jobs / alone.submit_seconds,
            "engine_cpu_seconds": alone.cpu_seconds,
            "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(alone.cpu_seconds, jobs),
        },
    )


async def w2_io_efficiency(ctx: Context) -> list[Result]:
    """W2 on a served engine: the median of ``w1_w2_runs`` runs."""
    runs = range(1, ctx.sizes.w1_w2_runs + 1)
    return [median_run([await _w2_run(ctx, run) for run in runs], "efficiency")]


async def _w2_run(ctx: Context, run: int) -> Result:
    """One W2 run on a served engine, on a fresh store."""
    sizes = ctx.sizes
    await ctx.fresh_store()
    environment = ctx.server_env(
        f"w2-{run}",
        EMBEDDING_CONCURRENCY=sizes.w2_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w2_concurrency,
        EMBEDDING_RATE_LIMIT=0,
        WARM_CHILDREN=1,
    )
    payloads = [{"seconds": sizes.w2_sleep_seconds}] * sizes.w2_jobs
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        batch = await run_batch(server, api, "sleep", payloads)
    ideal = sizes.w2_jobs * sizes.w2_sleep_seconds / sizes.w2_concurrency
    config = (
        f"batchyard serve, 1 child, concurrency {sizes.w2_concurrency}, claims of "
        f"{sizes.w2_concurrency}, async sleep handler, {ctx.store_name} store"
    )
    return Result(
        workload="W2",
        system="batchyard",
        config=config,
        metrics={
            **batch.metrics(sizes.w2_jobs),
            "ideal_seconds": ideal,
            "efficiency": ideal / batch.seconds,
        },
    )
