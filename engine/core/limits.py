"""Exact limits: where each is kept, and the batch's recent starts, which
each child of a run is handed.

Design notes
------------
A batch's rate limit (``RATE_LIMIT``, "N of cost per T seconds") is kept
by its child, the only process that runs the batch's jobs, where each
handler starts (``engine.child.rate_window``): strictly, so no half-open
window ``[t, t + T)`` of handler starts holds more than N of cost, jobs
queued in the child (prefetched) included. The engine only remembers the
run's starts, from the ``JobStarted`` reports it records (``RecentStarts``,
on their wall clock), and hands those still inside the window to every
child it binds to the run (``ipc.Begin``), so a child that replaces
another cannot burst. A start the old child made but whose report never
reached the engine (a pipe cut mid-line) is not handed on.

A job type with limits of its own (``[types.NAME]`` concurrency and rate)
has a ``TypeGate`` (``engine.core.type_gate``), which keeps them in the
store, across the whole cluster; the engine passes a job through it on the
way to the child. A type's take counts from the hand-off until the child
reports the real start, then moves there (``HeldJobs.restamp``,
``TypeGate.delay_rate``; only ever later; a type's hand-off is read just
before the store call, so a moved take never lands before the start).
Later takes are weighed against real starts, so no window of a type's
handler starts holds more than its count, provided each job starts within
about T of its hand-off (a take that left the window is no longer moved).
So nothing may hold such a job back in its child once its type is taken:
- a run with a type rate gate prefetches nothing (a prefetched job would
  wait in the child for a slot);
- under a batch rate too, the job's type takes nothing until the batch's
  window, as the child will find it, would let the job start at once
  (``engine.core.batch_room``): the run's reported starts, plus the jobs
  sent to the child and not reported started, counted as starting then.
  That is never less than the child's window holds when the job reaches
  it, and nothing else is sent to the child in between, so the job starts
  as it arrives, right after its hand-off, however long its batch's rate
  held it back in the engine.

The pause is a limit too: a run dispatches only while its ``PauseGate``
(``engine.core.pause``) is open.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from engine.config.parsers import RateLimit
from protocols import ipc

__all__ = ["RecentStarts"]


class RecentStarts:
    """The starts of one run's jobs that may still count against its
    batch's rate limit ``rate`` (not unlimited), on the wall clock."""

    def __init__(self, rate: RateLimit) -> None:
        self._rate = rate
        self._starts: deque[ipc.RecentStart] = deque()

    def note(self, started_at: float, cost: float) -> None:
        """A job of the run started at ``started_at`` (its ``JobStarted``),
        counting ``cost``; starts that left the window by then are forgotten."""
        per_seconds = self._rate.per_seconds
        while self._starts and self._starts[0].started_at + per_seconds <= started_at:
            self._starts.popleft()
        self._starts.append(ipc.RecentStart(started_at=started_at, cost=cost))

    @property
    def rate(self) -> RateLimit:
        """The batch's rate limit."""
        return self._rate

    def in_window(self, now: float) -> Iterator[ipc.RecentStart]:
        """The starts still inside the window at ``now`` (wall clock), oldest
        noted first."""
        per_seconds = self._rate.per_seconds
        return (s for s in self._starts if s.started_at + per_seconds > now)

    def handover(self, now: float) -> ipc.StartRate:
        """The batch's rate for a child bound to the run at ``now`` (wall
        clock), with the starts still inside the window then."""
        recent = tuple(self.in_window(now))
        return ipc.StartRate(
            count=self._rate.count, per_seconds=self._rate.per_seconds, recent=recent
        )
