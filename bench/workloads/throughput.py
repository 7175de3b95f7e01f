"""W1 overhead and W2 I/O efficiency, on a served batchyard.

W1: ``w1_jobs`` no-op jobs in one batch at concurrency ``w1_concurrency``
without a rate limit; jobs/s from ``POST process/all`` to the ``done``
frame on a WebSocket client (so the serving of ~3 events per job to one
watcher is included), and separately the submit time of the one
``POST /api/batches``. Beside it, ``bench.overhead`` runs the same batch on
an engine in this process, with no server and no watcher: what the engine
itself costs per job.

W2: ``w2_jobs`` ``sleep`` jobs of ``w2_sleep_seconds`` at concurrency
``w2_concurrency``: wall time and efficiency = ideal / measured, where the
ideal is jobs x sleep / concurrency (0.2 s at the issue's sizes).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from bench import overhead
from bench.context import Context
from bench.live.client import Api, Frame, open_api, open_events
from bench.live.server import LiveServer, open_server
from bench.model import Result

__all__ = ["run_batch", "w1_overhead", "w2_io_efficiency"]

#: The warm child starts with the engine; it is ready well within this.
_WARM_WAIT_SECONDS = 1.0


async def run_batch(
    server: LiveServer, api: Api, type: str, payloads: list[Any]
) -> tuple[float, float, list[Frame]]:
    """Submit one batch, process it, and follow it to its end over WebSocket.

    Returns:
        Seconds to submit, seconds from ``process/all`` to the last frame,
        and every frame of the run.
    """
    began = time.monotonic()
    batch_id = await api.create_batch(type, payloads)
    submitted = time.monotonic() - began
    await trio.sleep(_WARM_WAIT_SECONDS)
    async with open_events(server.ws_url, batch_id) as events:
        began = time.monotonic()
        await api.process_all(batch_id)
        frames = await events.until_end(batch_id)
    return submitted, frames[-1].arrived - began, frames


def _ended(frames: list[Frame]) -> dict[str, int]:
    last = frames[-1]
    return {
        "completed": int(last.data.get("completed", 0)),
        "failed": int(last.data.get("failed", 0)),
        "frames": len(frames),
    }


async def w1_overhead(ctx: Context) -> list[Result]:
    """W1 on a served engine, then on an engine in this process."""
    sizes = ctx.sizes
    jobs = sizes.w1_jobs
    environment = ctx.server_env(
        "w1",
        EMBEDDING_CONCURRENCY=sizes.w1_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w1_batch_size,
        EMBEDDING_RATE_LIMIT=0,
        WARM_CHILDREN=1,
    )
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        submitted, ran, frames = await run_batch(server, api, "noop", [{}] * jobs)
    config = (
        f"batchyard serve, 1 child, concurrency {sizes.w1_concurrency}, claims of "
        f"{sizes.w1_batch_size}, no rate limit, warm child, {ctx.store_name} store; "
        "timed by a WebSocket watcher"
    )
    served = Result(
        workload="W1",
        system="batchyard",
        config=config,
        metrics={
            "jobs": jobs,
            "jobs_per_second": jobs / ran,
            "seconds": ran,
            "submit_seconds": submitted,
            "submit_jobs_per_second": jobs / submitted,
            **_ended(frames),
        },
    )
    in_submit, in_ran = await overhead.measure(jobs, sizes.w1_concurrency, sizes.w1_batch_size)
    engine_only = Result(
        workload="W1",
        system="batchyard (engine only)",
        config=(
            f"open_engine in the bench process, no server, no watcher; concurrency "
            f"{sizes.w1_concurrency}, claims of {sizes.w1_batch_size}, SQLite store"
        ),
        metrics={
            "jobs": jobs,
            "jobs_per_second": jobs / in_ran,
            "seconds": in_ran,
            "submit_seconds": in_submit,
            "submit_jobs_per_second": jobs / in_submit,
        },
    )
    return [served, engine_only]


async def w2_io_efficiency(ctx: Context) -> list[Result]:
    """W2 on a served engine."""
    sizes = ctx.sizes
    environment = ctx.server_env(
        "w2",
        EMBEDDING_CONCURRENCY=sizes.w2_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w2_concurrency,
        EMBEDDING_RATE_LIMIT=0,
        WARM_CHILDREN=1,
    )
    payloads = [{"seconds": sizes.w2_sleep_seconds}] * sizes.w2_jobs
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        _, ran, frames = await run_batch(server, api, "sleep", payloads)
    ideal = sizes.w2_jobs * sizes.w2_sleep_seconds / sizes.w2_concurrency
    config = (
        f"batchyard serve, 1 child, concurrency {sizes.w2_concurrency}, claims of "
        f"{sizes.w2_concurrency}, async sleep handler, {ctx.store_name} store"
    )
    return [
        Result(
            workload="W2",
            system="batchyard",
            config=config,
            metrics={
                "jobs": sizes.w2_jobs,
                "seconds": ran,
                "ideal_seconds": ideal,
                "efficiency": ideal / ran,
                "jobs_per_second": sizes.w2_jobs / ran,
                **_ended(frames),
            },
        )
    ]
