"""``batchyard demo``: the whole system in one process, on a throwaway store.

Two batches of 200 ``sleep`` jobs (50 ms each) run side by side, each in its
own child process (``MAX_ACTIVE_BATCHES=2``, 8 jobs in flight per batch, no
rate limit). Live progress bars are fed by the event bus, exactly as a
WebSocket client would be; a summary follows.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import attrs
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.config.settings import RateLimit, Settings
from engine.core.engine import Engine, JobRequest
from engine.core.startup import open_engine
from protocols.events import ProcessingProgress, RunDone, ends_run

__all__ = ["DemoSummary", "run_demo"]

BATCHES = 2
JOBS_PER_BATCH = 200
JOB_SECONDS = 0.05


@attrs.frozen(kw_only=True)
class DemoSummary:
    """What the demo did."""

    completed: int
    failed: int
    wall_seconds: float

    @property
    def jobs_per_second(self) -> float:
        return (self.completed + self.failed) / self.wall_seconds


def demo_settings(directory: Path) -> Settings:
    """The demo's settings: a store in ``directory``, two batches at once,
    eight jobs in flight each, no rate limit."""
    return Settings(
        store_url=f"sqlite:///{directory / 'demo.db'}",
        max_active_batches=BATCHES,
        concurrency=8,
        batch_size=8,
        rate_limit=RateLimit(count=0, per_seconds=60),
        warm_children=BATCHES,
    )


async def run_demo(console: Console | None = None) -> DemoSummary:
    """Run the demo, drawing progress on ``console``.

    Cancellation: the engine shuts down gracefully; the store is deleted.
    """
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="batchyard-demo-") as directory:
        async with open_engine(demo_settings(Path(directory))) as engine:
            return await _run(engine, console)


async def _run(engine: Engine, console: Console) -> DemoSummary:
    jobs = [JobRequest(payload={"seconds": JOB_SECONDS}) for _ in range(JOBS_PER_BATCH)]
    batch_ids = [
        (await engine.create_batch(f"demo-{n + 1}", "sleep", jobs))[0] for n in range(BATCHES)
    ]
    console.print(
        f"batchyard demo: {BATCHES} batches of {JOBS_PER_BATCH} sleep jobs "
        f"({int(JOB_SECONDS * 1000)} ms each), one child process per batch, "
        f"{engine.settings.concurrency} jobs in flight per batch"
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    completed = failed = 0
    began = time.perf_counter()
    with (
        Progress(*columns, console=console) as progress,
        engine.subscribe(batch_ids) as events,
    ):
        bars = {b: progress.add_task(b, total=JOBS_PER_BATCH, failed=0) for b in batch_ids}
        for batch_id in batch_ids:
            await engine.start(batch_id)
        finished = 0
        async for event in events:
            data = event.data
            bar = bars[data.batch_id]
            if isinstance(data, ProcessingProgress):
                progress.update(bar, completed=data.completed + data.failed, failed=data.failed)
            elif isinstance(data, RunDone):
                completed += data.completed
                failed += data.failed
            if ends_run(event):
                progress.update(bar, completed=JOBS_PER_BATCH)
                finished += 1
                if finished == len(batch_ids):
                    break
    summary = DemoSummary(
        completed=completed, failed=failed, wall_seconds=time.perf_counter() - began
    )
    console.print(_summary_table(summary))
    return summary


def _summary_table(summary: DemoSummary) -> Table:
    table = Table(title="summary", show_header=False)
    table.add_row("completed", str(summary.completed))
    table.add_row("failed", str(summary.failed))
    table.add_row("wall time", f"{summary.wall_seconds:.2f} s")
    table.add_row("throughput", f"{summary.jobs_per_second:.0f} jobs/s")
    ideal = JOBS_PER_BATCH * JOB_SECONDS / 8
    table.add_row("ideal wall time", f"{ideal:.2f} s (both batches in parallel)")
    return table
