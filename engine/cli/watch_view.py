"""Live progress of watched batches on a rich console, as ``batchyard watch`` shows it.

Design notes
------------
One progress bar per batch: finished jobs (completed + failed) out of the
batch's total, as ``processing:progress`` reports them, and the failed count
beside it. A watched batch's bar is seeded from ``GET /api/batches/{id}``
taken right after the subscription is live, so a run already under way shows
its real position at once, and any event after that moment reaches the bar.
The summary line of a run counts its seconds from ``processing:started``
(or from when the watch first saw the batch, if the run was under way).
``job:progress`` events are not drawn: the per-batch counts already include
them, and a line per job would drown the bars.

A batch that is idle with no pending or active job has nothing to wait for
(its run ended before the watch began, or it never had jobs); watching it
ends at once with its counts rather than waiting for a run that may never
come. An idle batch with pending jobs is waited for: someone is about to
start it.
"""

from __future__ import annotations

import enum
import time

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from engine.client.http import BatchyardClient
from engine.client.watch import EventStream, open_watch
from protocols import api
from protocols.events import (
    Event,
    ProcessingProgress,
    ProcessingStarted,
    RunDone,
    RunError,
    ends_run,
)

__all__ = ["WatchEnd", "WatchResult", "show_watch"]


class WatchEnd(enum.Enum):
    """How a watch ended."""

    DONE = "done"
    ERROR = "error"
    NOT_RUNNING = "not-running"
    SERVER_GONE = "server-gone"


@attrs.frozen(kw_only=True)
class WatchResult:
    """How a watch ended, and the server's words when it went away."""

    end: WatchEnd
    detail: str | None = None


class _Bars:
    """One progress bar per batch, fed by events; counts runs that ended in error."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._bars: dict[str, TaskID] = {}
        self._began: dict[str, float] = {}
        self.errors = 0

    def seed(self, view: api.BatchView) -> None:
        c = view.counts
        total = c.pending + c.active + c.completed + c.failed
        self._progress.update(
            self._bar(view.batch_id),
            total=total,
            completed=c.completed + c.failed,
            failed=c.failed,
        )

    def _bar(self, batch_id: str) -> TaskID:
        if batch_id not in self._bars:
            self._began[batch_id] = time.monotonic()
            self._bars[batch_id] = self._progress.add_task(batch_id, total=None, failed=0)
        return self._bars[batch_id]

    def show(self, event: Event) -> None:
        data = event.data
        bar = self._bar(data.batch_id)
        if isinstance(data, ProcessingStarted):
            self._began[data.batch_id] = time.monotonic()
        elif isinstance(data, ProcessingProgress):
            done = data.completed + data.failed
            self._progress.update(bar, total=data.total, completed=done, failed=data.failed)
        elif isinstance(data, RunDone):
            self._say(done_line(data, time.monotonic() - self._began[data.batch_id]))
        elif isinstance(data, RunError):
            ended = ends_run(event)
            self.errors += 1 if ended else 0
            then = "" if ended else "; restarting its child"
            self._say(f"batch {data.batch_id} error: {data.error}{then}")

    def _say(self, line: str) -> None:
        self._progress.console.print(line, highlight=False)


def done_line(data: RunDone, seconds: float) -> str:
    """The one-line summary of a ``done`` event."""
    reason = f" ({data.reason})" if data.reason else ""
    return (
        f"batch {data.batch_id} done{reason}: {data.completed} completed, "
        f"{data.failed} failed in {seconds:.1f} s"
    )


def _nothing_to_wait_for(view: api.BatchView) -> bool:
    return not view.running and view.counts.pending == 0 and view.counts.active == 0


def _watching_line(view: api.BatchView | None) -> str:
    if view is None:
        return "watching every batch (Ctrl-C to stop)"
    if view.running:
        return f"watching batch {view.batch_id}"
    return f"watching batch {view.batch_id}: waiting for it to start"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
    )


async def show_watch(
    client: BatchyardClient, batch_id: str | None, *, follow: bool, console: Console
) -> WatchResult:
    """Draw the progress of ``batch_id`` (every batch when ``None``) until its run ends.

    Args:
        client: the server.
        batch_id: the batch to watch, or ``None`` for all of them (which
            never ends by itself).
        follow: keep going after the run ends.
        console: where to draw.

    Returns:
        How the watch ended.

    Raises:
        ClientError: the server is unreachable, refused, or the batch does
            not exist.

    Cancellation: the watch stops and its connection is closed.
    """
    ids = [batch_id] if batch_id else []
    async with open_watch(client, ids, follow=follow) as stream:
        view = await client.get_batch(batch_id) if batch_id else None
        if view is not None and not follow and _nothing_to_wait_for(view):
            c = view.counts
            console.print(
                f"batch {view.batch_id} is not running: {c.completed} completed, "
                f"{c.failed} failed",
                highlight=False,
            )
            return WatchResult(end=WatchEnd.NOT_RUNNING)
        console.print(_watching_line(view), highlight=False)
        errors = await _draw(stream, view, console)
    if stream.ended_by is not None:
        return WatchResult(end=WatchEnd.SERVER_GONE, detail=stream.ended_by)
    return WatchResult(end=WatchEnd.ERROR if errors else WatchEnd.DONE)


async def _draw(stream: EventStream, view: api.BatchView | None, console: Console) -> int:
    """Feed the bars until the stream ends; how many runs ended in error."""
    with _progress(console) as progress:
        bars = _Bars(progress)
        if view is not None:
            bars.seed(view)
        async for event in stream:
            bars.show(event)
    return bars.errors
