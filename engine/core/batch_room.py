"""Room for a job in its batch's rate window, as the run's child will
find it: a job of a type with a rate of its own is handed off only once its
batch's window would let it start at once.

Design notes
------------
The batch's window is the child's (``engine.child.rate_window``), where a
job that finds it full waits; a type's rate take is the engine's, moved to
the job's real start only while it is still inside the type's window
(``engine.core.limits``). So a job of such a type waits here, before its
type takes anything, until the batch's window has room for it.

The window is rebuilt from what the engine knows, with the child's own
arithmetic (``RateWindow``): the run's reported starts (``RecentStarts``,
at the times the child made them) and every job sent to the child whose
start is not reported yet, counted as starting now (``batch_window``).
From now until another job is sent, the child's window never holds more
cost than this one does now: a reported start sits in both at the same
time and leaves both together (at most the drift between the two
processes' clocks apart, which only delays a start by that much); any
other start the child can make meanwhile is of a job sent and not reported
now, which is counted already. So room here is room in the child when the
job reaches it, and stays so while the job waits at its type's gate: the
jobs ahead are sent before the window is read (``before_waiting``), the
dispatcher sends nothing else to the child until this job goes, and
meanwhile starts only leave the window or turn from unreported into
reported ones. A job that was sent and ends without starting (handed back)
counts no more once its outcome is in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import chain

import trio

from engine.child.rate_window import RateWindow
from engine.core.held import HeldJobs
from engine.core.limits import RecentStarts
from engine.store.records import JobRecord

__all__ = ["batch_window", "wait_for_batch_room"]


def batch_window(starts: RecentStarts, held: HeldJobs, wall_now: float) -> RateWindow:
    """The batch's window as its child will find it from ``wall_now`` on
    (the engine's wall clock), on ``trio.current_time()``: the run's
    reported starts, and each held job sent to the child and not reported
    started nor ended, counted as starting at ``wall_now``."""
    reported = ((start.started_at, start.cost) for start in starts.in_window(wall_now))
    starting = (
        (wall_now, job.record.cost)
        for job in held
        if job.sent and job.active_since is None and job.outcome is None
    )
    rate = starts.rate
    return RateWindow.carried(rate.count, rate.per_seconds, chain(reported, starting), wall_now)


async def wait_for_batch_room(
    job: JobRecord,
    held: HeldJobs,
    starts: RecentStarts,
    clock: Callable[[], float],
    before_waiting: Callable[[], Awaitable[None]],
) -> None:
    """Wait until the batch's window (``batch_window``) would let ``job``
    start at once; ``before_waiting`` (which sends the jobs ahead of it to
    the child) is awaited first. ``clock`` is the engine's wall clock.

    Cancellation: nothing is taken; safe at any point.
    """
    await before_waiting()
    while True:
        ready_at = batch_window(starts, held, clock()).next_start_at(job.cost)
        if ready_at <= trio.current_time():
            return
        await trio.sleep_until(ready_at)
