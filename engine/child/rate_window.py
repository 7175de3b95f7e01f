"""The batch's rate limit where handlers start: a strict sliding window of cost.

Design notes
------------
"N per T seconds" is kept *strictly*: the window remembers the time and
cost of each start still inside it, and lets a start of cost c happen only
when the cost started in the last T seconds plus c stays within N. So no
half-open window ``[t, t + T)`` ever holds more than N of cost, whatever
the pattern of arrivals; with every cost 1 (the default) it counts starts,
and at saturation every window holds exactly N. A fixed-window or
token-bucket limiter would let up to 2N fall within one window across a
boundary; this one cannot. Memory is O(starts in a window).

The child is the only process that runs its batch's jobs, so the window
is kept here, at the one point where a job waits before its handler
starts: a start is taken in the same step that reports it (``JobStarted``),
and a job queued in the child (prefetched) waits here like any other.
The engine hands each child the run's starts still inside the window
(``ipc.StartRate.recent``, on the wall clock of ``JobStarted``); they are
carried onto this child's clock once, as it begins (``handed``), so a
child that replaces another (crash, recycling, a cancelled job's
replacement) cannot burst.

A handler's ``RateLimited`` holds every start back for a while
(``engine.child.holds``); a start waits for both, checked in one step
(``not_before``), so a job that waited for the window does not start
inside a hold that began meanwhile.

Starts are served in order, like ``trio.CapacityLimiter``: while a job
waits, a later one queues behind it (``take_nowait`` refuses), and only
the first in line may take. Otherwise a job of cost above 1 could wait for
ever while jobs of cost 1 keep coming and take each unit as it leaves the
window.

The cost in the window is kept as a running total, adjusted as starts
come and leave, and set back to 0 whenever the window empties, so the
rounding of fractional costs cannot build up (whole costs are exact).

Time is read only through ``trio.current_time()``, so tests drive the
window with ``trio.testing.MockClock``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable

import trio

from protocols import ipc

__all__ = ["RateWindow"]


def _no_hold() -> float:
    return -math.inf


class RateWindow:
    """At most ``count`` of cost started in any window of ``per_seconds``
    seconds; ``count`` None: no limit (only ``not_before`` waits).

    Args:
        count: cost allowed per window, at least 1; None: unlimited.
        per_seconds: the window length, greater than 0.

    Raises:
        ValueError: either argument is out of range.
    """

    def __init__(self, count: int | None, per_seconds: float) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")
        if not (per_seconds > 0 and math.isfinite(per_seconds)):
            raise ValueError(f"per_seconds must be positive and finite, got {per_seconds!r}")
        self._count = count
        self._per_seconds = per_seconds
        # (time, cost), oldest first
        self._starts: deque[tuple[float, float]] = deque()
        #: The cost in ``_starts``.
        self._held = 0.0
        #: One event per waiting ``take``, first in line first; set when
        #: that one becomes first.
        self._waiting: deque[trio.Event] = deque()

    @classmethod
    def handed(cls, rate: ipc.StartRate | None, wall_now: float) -> RateWindow:
        """The window of ``rate`` (unlimited for None), holding its recent
        starts, carried from the wall clock (read as ``wall_now``) onto
        ``trio.current_time()``; a start later than ``wall_now`` (the wall
        clock was set back) counts as made now, so the window stays in
        order.

        Raises:
            ValueError: the rate or a recent start's cost is out of range.
        """
        if rate is None:
            return cls(None, 1.0)
        recent = ((start.started_at, start.cost) for start in rate.recent)
        return cls.carried(rate.count, rate.per_seconds, recent, wall_now)

    @classmethod
    def carried(
        cls,
        count: int,
        per_seconds: float,
        starts: Iterable[tuple[float, float]],
        wall_now: float,
    ) -> RateWindow:
        """The window of ``count`` per ``per_seconds`` holding ``starts``
        (each a wall-clock time and a cost), carried as ``handed`` carries
        a rate's recent starts.

        Raises:
            ValueError: a limit or a start's cost is out of range.
        """
        window = cls(count, per_seconds)
        now = trio.current_time()
        for started_at, cost in sorted(starts):
            window._append(now - max(0.0, wall_now - started_at), window._cost(cost))
        return window

    def _cost(self, cost: float) -> float:
        """``cost`` as it counts: a whole window at most (a job stored
        before the limit was lowered).

        Raises:
            ValueError: ``cost`` is not a finite number > 0.
        """
        if not (cost > 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a finite number > 0, got {cost!r}")
        return cost if self._count is None else min(cost, self._count)

    def _in_window(self, now: float) -> deque[tuple[float, float]]:
        # A start at ``at`` leaves the window at ``at + per_seconds``, computed
        # exactly as ``_ready_at`` computes it: ``now - per_seconds`` rounds
        # differently, and a start could then share a window with one that
        # waited for it to leave. Each caller reads the clock once: the
        # window it prunes is the one it weighs a start against.
        while self._starts and self._starts[0][0] + self._per_seconds <= now:
            self._held -= self._starts.popleft()[1]
        if not self._starts:
            self._held = 0.0
        return self._starts

    def _append(self, at: float, cost: float) -> None:
        self._starts.append((at, cost))
        self._held += cost

    def _ready_at(self, cost: float, now: float) -> float:
        """``next_start_at`` as of ``now``, for the first in line."""
        if self._count is None:
            return now
        self._in_window(now)
        held = self._held
        for at, taken in self._starts:
            if held + cost <= self._count:
                break
            held -= taken
            now = at + self._per_seconds
        return now

    def next_start_at(self, cost: float = 1.0) -> float:
        """When a start of ``cost`` is allowed, were it first in line: now
        when there is room, else the moment enough of the oldest starts have
        left the window.

        Raises:
            ValueError: ``cost`` is not a finite number > 0.
        """
        return self._ready_at(self._cost(cost), trio.current_time())

    def available(self) -> float:
        """How much cost the window admits right now (inf: unlimited)."""
        if self._count is None:
            return math.inf
        self._in_window(trio.current_time())
        return self._count - self._held

    def take_nowait(self, cost: float = 1.0, not_before: Callable[[], float] = _no_hold) -> bool:
        """Take a start of ``cost`` now if no ``take`` is waiting, the window
        has room and it is not before ``not_before()``; whether it was taken.

        Raises:
            ValueError: ``cost`` is not a finite number > 0.
        """
        cost = self._cost(cost)
        return not self._waiting and self._take_now(cost, not_before) is not None

    def _take_now(self, cost: float, not_before: Callable[[], float]) -> float | None:
        """Take a start of ``cost`` (counted already) now if allowed: when,
        else None."""
        now = trio.current_time()
        if not_before() > now:
            return None
        if self._count is None:
            return now
        if self._ready_at(cost, now) > now:
            return None
        self._append(now, cost)
        return now

    async def take(self, cost: float = 1.0, not_before: Callable[[], float] = _no_hold) -> float:
        """Take a start of ``cost``, in turn: behind every ``take`` already
        waiting, until the window has room and ``not_before()`` (read again
        after each wait) has passed.

        Cancellation: atomic; if cancelled, no start was taken, and the
        next in line takes its turn.

        Returns:
            When the start was taken (``trio.current_time()``); no other
            task runs between the take and the return, so the caller's job
            starts at that moment.

        Raises:
            ValueError: ``cost`` is not a finite number > 0.
        """
        cost = self._cost(cost)
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._waiting:
            taken_at = self._take_now(cost, not_before)
            if taken_at is not None:
                return taken_at
        turn = trio.Event()
        if not self._waiting:
            turn.set()
        self._waiting.append(turn)
        try:
            await turn.wait()
            while True:
                taken_at = self._take_now(cost, not_before)
                if taken_at is not None:
                    return taken_at
                now = trio.current_time()
                await trio.sleep_until(max(self._ready_at(cost, now), not_before()))
        finally:
            self._leave_line(turn)

    def _leave_line(self, turn: trio.Event) -> None:
        """Take ``turn`` out of the line; the next in line, if it is now
        first, gets its turn."""
        first = self._waiting[0] is turn
        self._waiting.remove(turn)
        if first and self._waiting:
            self._waiting[0].set()
