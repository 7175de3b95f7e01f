"""Where a served engine's CPU goes per job: sampled stacks sorted into areas.

``python -m bench.profile`` samples the served engine and its batch child
with py-spy (``record -f raw``: one line per distinct stack, ``frame;frame;...
COUNT``, outermost frame first, maybe led by a ``process PID:"command"``
frame). This module turns those lines into a table of microseconds of CPU
per job by area.

Design notes
------------
A sample whose innermost frame is a wait (the event loop's ``epoll``, the
store thread waiting for work, the child's parent watchdog asleep) is idle;
py-spy records them anyway. Every other sample is taken as time on a CPU.
Each process's CPU seconds over the window (read from the kernel, not from
the samples) are shared among its areas in proportion to their busy
samples, then divided by the jobs finished in the window.

A stack belongs to the first area in ``AREAS`` one of whose markers is in
one of its frames, so the order matters: a WebSocket send reached from the
event bus is fan-out, not the bus; a store call is the store, whoever made
it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import attrs

__all__ = ["AREAS", "AreaCost", "Samples", "areas_per_job", "parse_raw", "render"]

#: Innermost frames that are waits, not work.
IDLE_LEAVES = (
    "EpollIOManager.get_events (",
    "WorkerThread._work (",
    "_watch_parent (",
)

#: Per process, (area, markers): a stack is in the first area with a marker
#: in any of its frames.
AREAS: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "engine": (
        # A store step runs on the store's worker thread, or (SQLite's hot
        # steps) in the event loop's; handing one over is not the step.
        ("store: transactions", ("WorkerThread._handle_job",)),
        ("store: handing steps to its thread", ("trio/_threads.py", "_thread_cache.py")),
        ("store: transactions", ("engine/store/",)),
        ("fan-out: WebSocket and SSE sends", ("engine/server/streams.py",)),
        ("HTTP server, metrics", ("engine/server/", "starlette/", "hypercorn/")),
        ("events: publishing, replay ring", ("engine/core/bus.py", "engine/core/ring.py")),
        ("dispatching: RunJobs to the child", ("engine/core/dispatcher.py",)),
        ("reading child reports", ("ChildChannel.receive", "ChildChannel._drain")),
        ("recording outcomes", ("engine/core/recorder.py", "engine/core/held.py")),
        ("other run work", ("engine/",)),
    ),
    "child": (
        ("writing reports", ("ChildProgram.flush", "_blocking_writer", "ChildProgram.send")),
        ("reading jobs", ("_Inbox", "LineFramer")),
        ("job path: tasks, scopes, handlers", ("engine/child/",)),
    ),
}
OTHER = "other (event loop, timers, the rest)"


@attrs.frozen(kw_only=True)
class Samples:
    """Busy samples of one process by area, and its idle samples."""

    busy: Mapping[str, int]
    idle: int

    @property
    def total_busy(self) -> int:
        return sum(self.busy.values())


def _area(process: str, frames: list[str]) -> str:
    for area, markers in AREAS[process]:
        if any(marker in frame for frame in frames for marker in markers):
            return area
    return OTHER


def parse_raw(lines: Iterable[str], process: str) -> Samples:
    """The samples of one ``process`` (``"engine"`` or ``"child"``), by area.

    Raises:
        ValueError: a line is not ``stack COUNT``.
    """
    busy: Counter[str] = Counter()
    idle = 0
    for line in lines:
        if not line.strip():
            continue
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            raise ValueError(f"not a py-spy raw line: {line[:80]!r}")
        frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            idle += int(count)
        else:
            busy[_area(process, frames)] += int(count)
    return Samples(busy=dict(busy), idle=idle)


@attrs.frozen(kw_only=True)
class AreaCost:
    """One row of the table: where, which process, µs of CPU per job."""

    area: str
    process: str
    microseconds_per_job: float
    share_of_busy_samples: float


def areas_per_job(
    samples: Mapping[str, Samples], cpu_seconds: Mapping[str, float], jobs: int
) -> list[AreaCost]:
    """Each process's CPU seconds shared among its areas by busy samples,
    per job; the most expensive first.

    Raises:
        ValueError: ``jobs`` is not positive.
    """
    if jobs <= 0:
        raise ValueError("no job finished in the window")
    rows: list[AreaCost] = []
    for process, taken in samples.items():
        if not taken.total_busy:
            continue
        per_job = cpu_seconds.get(process, 0.0) * 1e6 / jobs
        for area, count in taken.busy.items():
            share = count / taken.total_busy
            rows.append(
                AreaCost(
                    area=area,
                    process=process,
                    microseconds_per_job=per_job * share,
                    share_of_busy_samples=share,
                )
            )
    return sorted(rows, key=lambda row: -row.microseconds_per_job)


def render(rows: list[AreaCost], cpu_seconds: Mapping[str, float], jobs: int) -> str:
    """The table as Markdown, with each process's total."""
    lines = [
        "| process | area | µs of CPU per job | share of the process's busy samples |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.process} | {row.area} | {row.microseconds_per_job:.1f} "
            f"| {row.share_of_busy_samples:.0%} |"
        )
    totals = ", ".join(
        f"{process} {seconds * 1e6 / jobs:.1f}" for process, seconds in sorted(cpu_seconds.items())
    )
    lines.append("")
    lines.append(f"Total µs of CPU per job: {totals}.")
    return "\n".join(lines)
