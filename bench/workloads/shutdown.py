"""W5 shutdown accuracy: SIGTERM to a served engine with jobs in flight.

Two runs, each on a server of its own with ``SHUTDOWN_GRACE_SECONDS`` =
``w5_grace_seconds``:

* **long**: ``sleep`` jobs far longer than the grace period. The engine has
  to give up on them: the time from SIGTERM to the process's exit is
  compared with the grace period.
* **short**: ``sleep`` jobs of ``w5_short_sleep_seconds``. They finish
  within the grace period, so the engine should exit as soon as they have:
  the time to exit is compared with the jobs' remaining time (the latest
  start seen, plus the sleep, minus the moment of SIGTERM).

SIGTERM is sent as soon as ``w5_concurrency`` jobs are seen active. After
the exit the store is opened directly and every job counted: a job that is
not pending, completed or failed (or that is missing) is lost.

The engine's CPU seconds (its process and its children) are read from
``process/all`` to the moment of SIGTERM: the shutdown itself, after which
the process is gone, is not in them.
"""

from __future__ import annotations

import time

import trio

from bench.context import Context
from bench.cpu import per_thousand_jobs
from bench.live.client import open_api, open_events
from bench.live.server import open_server
from bench.model import Result
from engine.store import open_store

__all__ = ["w5_shutdown_accuracy"]

#: The engine must be up and the jobs active well within this.
_SETUP_TIMEOUT = 60.0


async def _run(ctx: Context, name: str, sleep: float) -> tuple[dict[str, float | int], str]:
    sizes = ctx.sizes
    # On Redis, the run the other server handed over at its SIGTERM would be
    # taken over by this one: each run starts on a store of its own.
    await ctx.fresh_store()
    environment = ctx.server_env(
        name,
        EMBEDDING_CONCURRENCY=sizes.w5_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w5_concurrency,
        EMBEDDING_RATE_LIMIT=0,
        SHUTDOWN_GRACE_SECONDS=sizes.w5_grace_seconds,
        WARM_CHILDREN=1,
    )
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        batch_id = await api.create_batch("sleep", [{"seconds": sleep}] * sizes.w5_jobs)
        async with open_events(server.ws_url, batch_id) as events:
            cpu_before = server.cpu_seconds()
            await api.process_all(batch_id)
            actives: list[float] = []
            with trio.fail_after(_SETUP_TIMEOUT):
                while len(actives) < sizes.w5_concurrency:
                    frame = await events.next()
                    if frame.event == "job:progress" and frame.data.get("status") == "active":
                        actives.append(frame.arrived)
            cpu_used = server.cpu_seconds() - cpu_before
            signalled = time.monotonic()
            server.terminate()
            exit_code = await server.wait()
            exited = time.monotonic() - signalled
    async with open_store(ctx.store_url(name)) as store:
        counts = (await store.get_batch(batch_id)).counts
    accounted = counts.pending + counts.completed + counts.failed
    metrics: dict[str, float | int] = {
        "jobs": sizes.w5_jobs,
        "in_flight": len(actives),
        "exit_seconds": exited,
        "exit_code": exit_code,
        "remaining_seconds": max(0.0, max(actives) + sleep - signalled),
        "pending": counts.pending,
        "active": counts.active,
        "completed": counts.completed,
        "failed": counts.failed,
        "lost": sizes.w5_jobs - accounted,
        "engine_cpu_seconds": cpu_used,
        "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(cpu_used, sizes.w5_jobs),
    }
    return metrics, batch_id


async def w5_shutdown_accuracy(ctx: Context) -> list[Result]:
    """The long and the short run."""
    sizes = ctx.sizes
    grace = sizes.w5_grace_seconds
    long_metrics, _ = await _run(ctx, "w5-long", sizes.w5_long_sleep_seconds)
    long_metrics["grace_seconds"] = grace
    long_metrics["over_grace_seconds"] = float(long_metrics["exit_seconds"]) - grace
    short_metrics, _ = await _run(ctx, "w5-short", sizes.w5_short_sleep_seconds)
    short_metrics["over_remaining_seconds"] = float(short_metrics["exit_seconds"]) - float(
        short_metrics["remaining_seconds"]
    )
    common = (
        f"batchyard serve, SHUTDOWN_GRACE_SECONDS={grace:g}, concurrency "
        f"{sizes.w5_concurrency}, {sizes.w5_jobs} jobs, SIGTERM once "
        f"{sizes.w5_concurrency} are active"
    )
    return [
        Result(
            workload="W5",
            system="batchyard (sleep longer than grace)",
            config=f"{common}; sleep {sizes.w5_long_sleep_seconds:g} s",
            metrics=long_metrics,
        ),
        Result(
            workload="W5",
            system="batchyard (sleep shorter than grace)",
            config=f"{common}; sleep {sizes.w5_short_sleep_seconds:g} s",
            metrics=short_metrics,
        ),
    ]
