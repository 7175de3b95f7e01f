"""W8 scale-out: W1's no-op jobs spread over ``w8_batches`` batches, run by
1, 2, ... ``w8_max_workers`` ``batchyard worker`` processes on one Redis.

Each run starts on a store without batchyard's keys (``bench.redis_keys``:
nothing else of the database is touched) and creates the batches while no
engine runs them: an engine in the bench process with ``AUTO_START`` off
creates them and closes. Then it launches its N workers at once, each a
real ``python -m engine worker --store URL`` process (``batchyard
worker``, ``AUTO_START=1``), one batch at a time per worker
(``MAX_ACTIVE_BATCHES=1``) at W1's concurrency and claim size, with a warm
child. A worker's start-up (imports, its store connection, its warm child)
is not work, so the time runs from the first event any worker publishes
(the first ``processing:started``, read from the cluster's event log the
moment it is appended) to the moment the bench sees every job of every
batch finished (``list_batches``, polled every ``_POLL_SECONDS``); the
start-up and the wall time from the launch are recorded beside it.

While the batches run the bench also polls the cluster's engine registry:
how many of the workers were seen running a batch says whether the work
spread over them. CPU: the workers' processes and their children over the
timed span, per 1,000 jobs.

The store is ``--store`` when that is Redis, else ``--scale-out-store``;
when that Redis cannot be reached W8 is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from bench.context import Context
from bench.cpu import per_thousand_jobs, tree_cpu_seconds
from bench.live.server import REPO
from bench.model import Result, skipped
from bench.redis_keys import clear_batchyard_keys, is_redis, why_unreachable
from engine.config.parsers import redact_url
from engine.config.settings import Settings
from engine.core.engine import JobRequest
from engine.core.startup import open_engine
from engine.store.redis import RedisStore, open_redis_store

__all__ = ["w8_scale_out"]

#: How often the bench looks at the batches' counts and the engine registry.
_POLL_SECONDS = 0.02

#: A worker publishes its first event within seconds of its launch; the
#: batches then take seconds. Beyond these the run is broken, not slow.
_START_TIMEOUT = 60.0
_RUN_TIMEOUT = 600.0

#: What a worker gets after SIGTERM (it is idle by then) before SIGKILL.
_STOP_TIMEOUT = 15.0


@attrs.frozen(kw_only=True)
class _Run:
    """One run of N workers, as the bench saw it."""

    startup_seconds: float
    seconds: float
    wall_seconds: float
    completed: int
    failed: int
    workers_seen_running: int
    cpu_seconds: float


def _split(jobs: int, batches: int) -> list[int]:
    return [jobs // batches + (index < jobs % batches) for index in range(batches)]


async def _create_batches(url: str, sizes: Sequence[int]) -> set[str]:
    settings = Settings(store_url=url, warm_children=0, auto_start=False)
    async with open_engine(settings) as engine:
        created = set()
        for size in sizes:
            batch_id, _ = await engine.create_batch(None, "noop", [JobRequest()] * size)
            created.add(batch_id)
    return created


def _worker_environment(ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    settings = {
        "AUTO_START": 1,
        "MAX_ACTIVE_BATCHES": 1,
        "EMBEDDING_CONCURRENCY": ctx.sizes.w1_concurrency,
        "EMBEDDING_BATCH_SIZE": ctx.sizes.w1_batch_size,
        "EMBEDDING_RATE_LIMIT": 0,
        "WARM_CHILDREN": 1,
    }
    env.update({name: str(value) for name, value in settings.items()})
    return env


@asynccontextmanager
async def _workers(ctx: Context, url: str, count: int) -> AsyncIterator[list[trio.Process]]:
    """``count`` ``batchyard worker`` processes, launched at once, stopped
    with SIGTERM (SIGKILL after ``_STOP_TIMEOUT``) when the block ends."""
    command = [sys.executable, "-m", "engine", "worker", "--store", url]
    env = _worker_environment(ctx)
    processes: list[trio.Process] = []
    with contextlib.ExitStack() as logs:
        try:
            for number in range(count):
                log = ctx.workdir / f"w8-{count}-worker-{number}.log"
                output = logs.enter_context(log.open("wb"))
                processes.append(
                    await trio.lowlevel.open_process(
                        command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO
                    )
                )
            yield processes
        finally:
            with trio.CancelScope(shield=True):
                await _stop(processes)


async def _stop(processes: Sequence[trio.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        with trio.move_on_after(_STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def _cpu_seconds(processes: Sequence[trio.Process]) -> float:
    return sum(tree_cpu_seconds(process.pid) for process in processes)


def _check_alive(ctx: Context, processes: Sequence[trio.Process], count: int) -> None:
    for number, process in enumerate(processes):
        if process.returncode is not None:
            log = ctx.workdir / f"w8-{count}-worker-{number}.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(f"worker {number} exited with {process.returncode}:\n{tail}")


async def _first_event(ctx: Context, store: RedisStore, processes: Sequence[trio.Process]) -> None:
    with trio.fail_after(_START_TIMEOUT):
        while not await store.read_events(0, limit=1, wait_seconds=1.0):
            _check_alive(ctx, processes, len(processes))


async def _until_finished(
    ctx: Context, store: RedisStore, batch_ids: set[str], processes: Sequence[trio.Process]
) -> tuple[int, int, int]:
    """Completed and failed jobs, and how many engines were seen running a
    batch, once every job of ``batch_ids`` is finished."""
    running: set[str] = set()
    with trio.fail_after(_RUN_TIMEOUT):
        while True:
            ours = [b for b in await store.list_batches() if b.batch_id in batch_ids]
            running |= {e.engine_id for e in await store.engines() if e.running_batches}
            if all(b.counts.pending == b.counts.active == 0 for b in ours):
                completed = sum(b.counts.completed for b in ours)
                return completed, sum(b.counts.failed for b in ours), len(running)
            _check_alive(ctx, processes, len(processes))
            await trio.sleep(_POLL_SECONDS)


async def _one(ctx: Context, url: str, count: int) -> _Run:
    await clear_batchyard_keys(url)
    batch_ids = await _create_batches(url, _split(ctx.sizes.w1_jobs, ctx.sizes.w8_batches))
    async with open_redis_store(url) as store, _workers(ctx, url, count) as processes:
        launched = time.monotonic()
        await _first_event(ctx, store, processes)
        first = time.monotonic()
        cpu_before = _cpu_seconds(processes)
        completed, failed, seen = await _until_finished(ctx, store, batch_ids, processes)
        ended = time.monotonic()
        cpu_used = _cpu_seconds(processes) - cpu_before
    return _Run(
        startup_seconds=first - launched,
        seconds=ended - first,
        wall_seconds=ended - launched,
        completed=completed,
        failed=failed,
        workers_seen_running=seen,
        cpu_seconds=cpu_used,
    )


def _result(ctx: Context, url: str, count: int, run: _Run, one_worker: float | None) -> Result:
    sizes = ctx.sizes
    jobs = sizes.w1_jobs
    rate = jobs / run.seconds
    workers = f"{count} worker{'s' if count > 1 else ''}"
    return Result(
        workload="W8",
        system=f"batchyard ({workers})",
        config=(
            f"{workers} (python -m engine worker, AUTO_START=1, MAX_ACTIVE_BATCHES=1, "
            f"concurrency {sizes.w1_concurrency}, claims of {sizes.w1_batch_size}, warm child) "
            f"on {redact_url(url)}; {jobs:,} no-op jobs in {sizes.w8_batches} batches created "
            "before the launch; timed from the first processing:started to the last job finished"
        ),
        metrics={
            "workers": count,
            "batches": sizes.w8_batches,
            "jobs": jobs,
            "seconds": run.seconds,
            "jobs_per_second": rate,
            "vs_one_worker": rate / (one_worker or rate),
            "startup_seconds": run.startup_seconds,
            "wall_seconds": run.wall_seconds,
            "workers_seen_running": run.workers_seen_running,
            "completed": run.completed,
            "failed": run.failed,
            "engine_cpu_seconds": run.cpu_seconds,
            "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(run.cpu_seconds, jobs),
        },
    )


def _note(cores: int) -> str:
    return (
        f"{cores} cores for every worker, its child and Redis: the point is that nothing "
        "serialises on one engine (the batches spread over the workers, each worker's share "
        "runs beside the others'), not a line that grows with the workers"
    )


async def w8_scale_out(ctx: Context) -> list[Result]:
    """W8 with 1, 2, ... ``w8_max_workers`` workers; skipped without Redis."""
    url = ctx.scale_out_redis
    if not is_redis(url):
        return [skipped("W8", "batchyard", f"needs a Redis store, not {redact_url(url)}")]
    reason = await why_unreachable(url)
    if reason is not None:
        return [skipped("W8", "batchyard", f"no Redis at {redact_url(url)}: {reason}")]
    results: list[Result] = []
    one_worker = None
    for count in range(1, ctx.sizes.w8_max_workers + 1):
        ctx.say(f"  {count} worker(s) ...")
        run = await _one(ctx, url, count)
        result = _result(ctx, url, count, run, one_worker)
        one_worker = one_worker or result.metric("jobs_per_second")
        results.append(result)
    await clear_batchyard_keys(url)
    last = results[-1]
    results[-1] = attrs.evolve(last, notes=(*last.notes, _note(os.cpu_count() or 0)))
    return results
