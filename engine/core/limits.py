"""Exact limits: a strict sliding-window rate limiter of cost, and how it
stands beside a job type's cluster-wide gate and the pause.

Design notes
------------
"N per T seconds" is kept *strictly*: the limiter remembers the time and
cost of each start still in the window, and lets a start of cost c happen
only when the cost started in the last T seconds plus c stays within N. So
no half-open window ``[t, t + T)`` ever holds more than N of cost, whatever
the pattern of arrivals; with every cost 1 (the default) it counts starts,
and at saturation every window holds exactly N. A fixed-window or
token-bucket limiter would let up to 2N fall within one window across a
boundary; this one cannot. Memory is O(starts in a window).

Time is read only through ``trio.current_time()``, so tests drive the
limiter with ``trio.testing.MockClock``.

A job type with limits of its own (``[types.NAME]`` concurrency and rate)
has a ``TypeGate`` (``engine.core.type_gate``), which keeps them in the
store, across the whole cluster.

A batch's limiter and its job types' gates are passed one after the other,
not together, each as a job is handed to the child: so a job waiting at its
type's gate has taken a start of its batch's rate; that can only slow the
batch, never let a window of either limit hold more than its count.

A start counts from its handler's real start, not from the hand-off: the
child reports it (``JobStarted``) a pipe hop later, or later still when the
job queued there, and the recorder moves the job's takes by the difference
on the engine's wall clock (``RateLimiter.delay``, ``TypeGate.delay_rate``;
only ever later; a type's hand-off is read just before the store call, so
a moved take never lands before the start). Later takes are weighed
against real starts, so no window of handler starts holds more than N,
provided each report arrives within about T of its hand-off (a take that
left the window is no longer moved).

The pause is a limit too: a run dispatches only while its ``PauseGate``
(``engine.core.pause``) is open.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import attrs
import trio

__all__ = ["RateLimiter", "RateLimiterStatistics"]


@attrs.frozen(kw_only=True)
class RateLimiterStatistics:
    """A snapshot: the limit, the cost started in the current window, and when
    the next start of cost 1 is allowed (``trio.current_time()`` units; now
    when there is room)."""

    count: int
    per_seconds: float
    cost_in_window: float
    next_start_at: float


class RateLimiter:
    """At most ``count`` of cost started in any window of ``per_seconds`` seconds.

    Args:
        count: cost allowed per window, at least 1.
        per_seconds: the window length, greater than 0.

    Raises:
        ValueError: either argument is out of range.
    """

    def __init__(self, count: int, per_seconds: float) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")
        if not (per_seconds > 0 and math.isfinite(per_seconds)):
            raise ValueError(f"per_seconds must be positive and finite, got {per_seconds!r}")
        self._count = count
        self._per_seconds = per_seconds
        # (time, cost, holder), oldest first
        self._starts: deque[tuple[float, float, str | None]] = deque()

    @property
    def count(self) -> int:
        """The cost allowed per window."""
        return self._count

    def _in_window(self) -> deque[tuple[float, float, str | None]]:
        # A start at ``at`` leaves the window at ``at + per_seconds``, computed
        # exactly as ``next_start_at`` computes it: ``now - per_seconds``
        # rounds differently, and a start could then share a window with one
        # that waited for it to leave.
        now = trio.current_time()
        while self._starts and self._starts[0][0] + self._per_seconds <= now:
            self._starts.popleft()
        return self._starts

    def _check(self, cost: float) -> None:
        if not (0 < cost <= self._count and math.isfinite(cost)):
            raise ValueError(f"cost must be within (0, {self._count}], got {cost!r}")

    def next_start_at(self, cost: float = 1.0) -> float:
        """When a start of ``cost`` is allowed: now when there is room, else the
        moment enough of the oldest starts have left the window.

        Raises:
            ValueError: ``cost`` is not within (0, count].
        """
        self._check(cost)
        now = trio.current_time()
        held = sum(taken for _, taken, _ in self._in_window())
        for at, taken, _ in self._starts:
            if held + cost <= self._count:
                break
            held -= taken
            now = at + self._per_seconds
        return now

    def available(self) -> float:
        """How much cost the window admits right now."""
        return self._count - sum(taken for _, taken, _ in self._in_window())

    def acquire_nowait(self, cost: float = 1.0, holder: str | None = None) -> None:
        """Take a start of ``cost`` now, in ``holder``'s name (see ``delay``).

        Raises:
            trio.WouldBlock: the window has no room for it.
            ValueError: ``cost`` is not within (0, count].
        """
        if self.next_start_at(cost) > trio.current_time():
            raise trio.WouldBlock
        self._starts.append((trio.current_time(), cost, holder))

    async def acquire(self, cost: float = 1.0, holder: str | None = None) -> float:
        """Take a start of ``cost``, waiting until the window has room, in
        ``holder``'s name (a job id: ``delay`` moves it later).

        Cancellation: atomic; if cancelled, no start was taken.

        Returns:
            When the start was taken (``trio.current_time()``).

        Raises:
            ValueError: ``cost`` is not within (0, count].
        """
        while True:
            # Another waiter may have taken the room this one slept until.
            ready_at = self.next_start_at(cost)
            if ready_at <= trio.current_time():
                await trio.lowlevel.checkpoint_if_cancelled()
                taken_at = trio.current_time()
                self._starts.append((taken_at, cost, holder))
                await trio.lowlevel.cancel_shielded_checkpoint()
                return taken_at
            await trio.sleep_until(ready_at)

    def delay(self, holder: str, seconds: float) -> None:
        """Move ``holder``'s latest start ``seconds`` later (its job started
        then); one that left the window, or a delay not positive: nothing."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        for index in range(len(self._starts) - 1, -1, -1):
            at, cost, name = self._starts[index]
            if name == holder:
                del self._starts[index]
                bisect.insort(self._starts, (at + seconds, cost, holder), key=lambda s: s[0])
                return

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the limiter."""
        return RateLimiterStatistics(
            count=self._count,
            per_seconds=self._per_seconds,
            cost_in_window=self._count - self.available(),
            next_start_at=self.next_start_at(),
        )
