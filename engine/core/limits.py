"""Exact limits: a strict sliding-window rate limiter, and a job type's gate.

Design notes
------------
"N starts per T seconds" is kept *strictly*: the limiter remembers the time
of each of the last N starts, and lets a new start happen only when the
oldest of them is at least T seconds old. So no half-open window
``[t, t + T)`` ever holds more than N starts, whatever the pattern of
arrivals, and at saturation every window holds exactly N. A fixed-window or
token-bucket limiter would let up to 2N starts fall within one window across
a boundary; this one cannot.

Memory is O(N): a deque of at most N timestamps.

Time is read only through ``trio.current_time()``, so tests drive the limiter
with ``trio.testing.MockClock``.

A batch's limiter and its job types' gates are taken one after the other,
not together: the runner takes the batch's starts when it claims jobs, and
each job's type start when it hands the job to the child, once the job's
type is known. So a job waiting at its type's gate holds a start of its
batch's rate; that can only slow the batch, never let a window of either
limiter hold more than its count.

The pause is a limit too: a run dispatches only while its ``PauseGate`` is
open. The runner sees the gate through that ``Protocol``; the engine's
``PauseSwitch`` is the one it is given.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import attrs
import trio

__all__ = [
    "PauseGate",
    "PauseSwitch",
    "RateLimiter",
    "RateLimiterStatistics",
    "TypeGate",
]


@attrs.frozen(kw_only=True)
class RateLimiterStatistics:
    """A snapshot: the limit, starts in the current window, and when the next
    start is allowed (``trio.current_time()`` units; now when there is room)."""

    count: int
    per_seconds: float
    starts_in_window: int
    next_start_at: float


class RateLimiter:
    """At most ``count`` starts in any window of ``per_seconds`` seconds.

    Args:
        count: starts allowed per window, at least 1.
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
        self._starts: deque[float] = deque(maxlen=count)

    def next_start_at(self) -> float:
        """When a start is allowed: now when there is room, else the moment
        the oldest remembered start leaves the window."""
        now = trio.current_time()
        if len(self._starts) < self._count:
            return now
        return max(now, self._starts[0] + self._per_seconds)

    def available(self) -> int:
        """How many starts the window allows right now."""
        now = trio.current_time()
        return self._count - sum(1 for t in self._starts if t > now - self._per_seconds)

    def acquire_nowait(self) -> None:
        """Take one start now.

        Raises:
            trio.WouldBlock: the window is full.
        """
        if self.next_start_at() > trio.current_time():
            raise trio.WouldBlock
        self._starts.append(trio.current_time())

    async def acquire(self) -> None:
        """Take one start, waiting until the window has room.

        Cancellation: atomic; if cancelled, no start was taken.
        """
        while True:
            # Another waiter may have taken the room this one slept until.
            ready_at = self.next_start_at()
            if ready_at <= trio.current_time():
                await trio.lowlevel.checkpoint_if_cancelled()
                self._starts.append(trio.current_time())
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await trio.sleep_until(ready_at)

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the limiter."""
        return RateLimiterStatistics(
            count=self._count,
            per_seconds=self._per_seconds,
            starts_in_window=self._count - self.available(),
            next_start_at=self.next_start_at(),
        )


@attrs.frozen(kw_only=True)
class TypeGate:
    """The engine-wide limits of one job type, shared by every batch: a rate
    of starts and a count of jobs handed out at once (None: no limit)."""

    rate: RateLimiter | None = None
    slots: trio.CapacityLimiter | None = None


class PauseGate(Protocol):
    """What a run asks before it hands out jobs: whether dispatching is allowed."""

    @property
    def is_open(self) -> bool:
        """Whether dispatching is allowed now."""
        ...

    async def wait_open(self) -> None:
        """Return once dispatching is allowed (at once while it is).

        Cancellation: atomic.
        """
        ...


class PauseSwitch:
    """The engine's ``PauseGate``: open unless paused."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        """Whether dispatching is allowed now."""
        return self._open.is_set()

    def close(self) -> None:
        """Pause: runs stop handing out jobs until ``open``."""
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        """Resume: every waiting run goes on at once."""
        self._open.set()

    async def wait_open(self) -> None:
        """Return once dispatching is allowed (at once while it is).

        Cancellation: atomic.
        """
        await self._open.wait()
