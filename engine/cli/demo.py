"""``batchyard demo``: the whole system in one process, on a throwaway store.

The demo tells four short stories, each one line of its summary:

1. two batches of 200 ``sleep`` jobs (50 ms each) run side by side, each in
   its own child process (``MAX_ACTIVE_BATCHES=2``, 8 jobs in flight each);
2. while both slots are busy, a third start is refused (what the API
   answers with 429 capacity reached);
3. a batch of ``echo`` jobs whose type is rate-limited to 10 starts a
   second: its ETA (``etaSeconds`` of ``processing:progress``) counts down;
4. a job that crashes its child on its first attempt: the engine restarts
   the child (``BATCH_RETRIES``) and the job succeeds on its second attempt.

Live progress bars are fed by the event bus, exactly as a WebSocket client
would be. ``run_demo`` runs it on an engine of its own; ``demo_on`` runs it
on an engine the caller owns (``batchyard demo --serve`` serves that engine
and its dashboard while the demo runs, and after).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.config.settings import RateLimit, Settings
from engine.config.sources import TypeOverrides
from engine.core.engine import Engine, JobRequest, StartResult
from engine.core.startup import open_engine
from protocols.events import ProcessingProgress, RunDone, RunError, ends_run

__all__ = ["DemoSummary", "demo_on", "demo_settings", "run_demo"]

BATCHES = 2
JOBS_PER_BATCH = 200
JOB_SECONDS = 0.05
LIMITED_BATCH = "demo-limited"
LIMITED_JOBS = 30
LIMITED_RATE = RateLimit(count=10, per_seconds=1.0)


@attrs.define(kw_only=True)
class DemoSummary:
    """What the demo did."""

    completed: int = 0
    failed: int = 0
    wall_seconds: float = 0.0
    refused: StartResult | None = None
    limited_seconds: float = 0.0
    limited_failed: int = 0
    etas: list[float] = attrs.field(factory=list)
    crashes: int = 0
    crash_outcome: str = ""

    @property
    def jobs_per_second(self) -> float:
        return (self.completed + self.failed) / self.wall_seconds

    @property
    def all_went_well(self) -> bool:
        """Whether every story ended as it should."""
        return (
            self.failed == self.limited_failed == 0
            and self.refused is StartResult.CAPACITY_REACHED
            and self.crash_outcome == "completed on attempt 2"
        )


def demo_settings(directory: Path) -> Settings:
    """The demo's settings: a store in ``directory``, two batches at once,
    eight jobs in flight each, no batch rate limit, ``echo`` limited to 10
    starts a second, and the demo's crashing type retried once."""
    return Settings(
        store_url=f"sqlite:///{directory / 'demo.db'}",
        max_active_batches=BATCHES,
        concurrency=8,
        batch_size=8,
        rate_limit=RateLimit(count=0, per_seconds=60),
        warm_children=BATCHES,
        job_modules=("engine.jobs.demo",),
        job_backoff_seconds=0.2,
        type_overrides={
            "echo": TypeOverrides(rate_limit=LIMITED_RATE),
            "demo-crash-once": TypeOverrides(max_attempts=2),
        },
    )


async def run_demo(console: Console | None = None) -> DemoSummary:
    """Run the demo on an engine of its own, drawing progress on ``console``.

    Cancellation: the engine shuts down gracefully; the store is deleted.
    """
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="batchyard-demo-") as directory:
        async with open_engine(demo_settings(Path(directory))) as engine:
            return await demo_on(engine, console)


async def demo_on(engine: Engine, console: Console) -> DemoSummary:
    """Run the demo's four stories on ``engine`` (opened with
    ``demo_settings``), then print the summary.

    Cancellation: stops watching; runs already started go on in ``engine``.
    """
    summary = DemoSummary()
    await _parallel(engine, console, summary)
    await _rate_limited(engine, console, summary)
    await _crash_once(engine, console, summary)
    console.print(_summary_table(summary))
    return summary


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("{task.fields[eta]}"),
        TimeElapsedColumn(),
        console=console,
    )


@attrs.define
class _Seen:
    """What the runs watched by ``_watch`` told."""

    completed: int = 0
    failed: int = 0
    crashes: int = 0
    etas: list[float] = attrs.field(factory=list)


async def _watch(
    engine: Engine,
    console: Console,
    batch_ids: Sequence[str],
    total: int,
    *,
    refused: str | None = None,
) -> tuple[_Seen, StartResult | None]:
    """Start ``batch_ids`` and draw their bars until every run ends; with
    ``refused``, also start that batch once they all run (capacity being
    full, it is refused) and return what the start answered."""
    seen, answer = _Seen(), None
    with _progress(console) as progress, engine.subscribe(batch_ids) as events:
        bars = {b: progress.add_task(b, total=total, failed=0, eta="") for b in batch_ids}
        for batch_id in batch_ids:
            await engine.start(batch_id)
        if refused is not None:
            answer = await engine.start(refused)
        finished = 0
        async for event in events:
            data = event.data
            bar = bars[data.batch_id]
            if isinstance(data, ProcessingProgress):
                eta = ""
                if data.eta_seconds is not None:
                    seen.etas.append(data.eta_seconds)
                    eta = f"ETA {data.eta_seconds:.1f} s"
                done = data.completed + data.failed
                progress.update(bar, completed=done, failed=data.failed, eta=eta)
            elif isinstance(data, RunDone):
                seen.completed += data.completed
                seen.failed += data.failed
            elif isinstance(data, RunError):
                seen.crashes += 1
            if ends_run(event):
                progress.update(bar, completed=total)
                finished += 1
                if finished == len(batch_ids):
                    break
    return seen, answer


async def _parallel(engine: Engine, console: Console, summary: DemoSummary) -> None:
    jobs = [JobRequest(payload={"seconds": JOB_SECONDS}) for _ in range(JOBS_PER_BATCH)]
    batch_ids = [
        (await engine.create_batch(f"demo-{n + 1}", "sleep", jobs))[0] for n in range(BATCHES)
    ]
    limited = [JobRequest(payload=n) for n in range(LIMITED_JOBS)]
    await engine.create_batch(LIMITED_BATCH, "echo", limited)
    console.print(
        f"batchyard demo: {BATCHES} batches of {JOBS_PER_BATCH} sleep jobs "
        f"({int(JOB_SECONDS * 1000)} ms each), one child process per batch, "
        f"{engine.settings.concurrency} jobs in flight per batch"
    )
    began = time.perf_counter()
    seen, summary.refused = await _watch(
        engine, console, batch_ids, JOBS_PER_BATCH, refused=LIMITED_BATCH
    )
    summary.wall_seconds = time.perf_counter() - began
    summary.completed, summary.failed = seen.completed, seen.failed


async def _rate_limited(engine: Engine, console: Console, summary: DemoSummary) -> None:
    console.print(
        f"{LIMITED_JOBS} echo jobs, their type rate-limited to {LIMITED_RATE.count} "
        f"starts per {LIMITED_RATE.per_seconds:g} s"
    )
    began = time.perf_counter()
    seen, _ = await _watch(engine, console, [LIMITED_BATCH], LIMITED_JOBS)
    summary.limited_seconds = time.perf_counter() - began
    summary.limited_failed = seen.failed
    summary.etas = seen.etas


async def _crash_once(engine: Engine, console: Console, summary: DemoSummary) -> None:
    batch_id, _ = await engine.create_batch(
        "demo-crash", "demo-crash-once", [JobRequest(payload=None)]
    )
    console.print("one job that crashes its child process on its first attempt")
    seen, _ = await _watch(engine, console, [batch_id], 1)
    job = (await engine.list_jobs(batch_id)).jobs[0]
    summary.crashes = seen.crashes
    summary.crash_outcome = f"{job.state.value} on attempt {job.attempts}"


def _summary_table(summary: DemoSummary) -> Table:
    table = Table(title="summary", show_header=False)
    table.add_row("completed", str(summary.completed))
    table.add_row("failed", str(summary.failed))
    table.add_row("wall time", f"{summary.wall_seconds:.2f} s")
    table.add_row("throughput", f"{summary.jobs_per_second:.0f} jobs/s")
    ideal = JOBS_PER_BATCH * JOB_SECONDS / 8
    table.add_row("ideal wall time", f"{ideal:.2f} s (both batches in parallel)")
    refused = {
        StartResult.CAPACITY_REACHED: "refused: capacity reached (HTTP 429), both slots busy",
        StartResult.STARTED: "started (capacity was not full)",
        StartResult.ALREADY_RUNNING: "already running (HTTP 202)",
    }
    told = "not tried" if summary.refused is None else refused[summary.refused]
    table.add_row("third start", told)
    first = f"{summary.etas[0]:.1f} s" if summary.etas else "unknown"
    table.add_row(
        "rate limit",
        f"{LIMITED_JOBS - summary.limited_failed} of {LIMITED_JOBS} jobs at"
        f" {LIMITED_RATE.count}/s in {summary.limited_seconds:.1f} s,"
        f" its ETA counted down from {first} to 0",
    )
    table.add_row(
        "crash",
        f"the child crashed {summary.crashes}x and was restarted; the job {summary.crash_outcome}",
    )
    return table
