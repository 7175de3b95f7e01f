"""How long a run still needs: ``etaSeconds`` of ``processing:progress``
and of ``GET /api/batches/{batchId}``.

Design notes
------------
Two bounds, and the estimate is the larger (the slower) of those known:

- the observed pace: jobs finished over the last ``window_seconds`` (or
  since the run began, when younger), measured up to *now*, so a run that
  stalls sees its estimate grow instead of freezing;
- the rate limit (the slower of the batch's and its job type's):
  ``remaining`` more job starts cannot take less than
  ``remaining / (count / per_seconds)`` seconds, which is all that is
  known before the first job finishes.

With no rate limit and nothing finished yet the estimate is unknown
(``None``); with nothing remaining it is 0. Time is ``trio.current_time()``,
so tests drive it with a ``MockClock``.
"""

from __future__ import annotations

import collections

import trio

__all__ = ["EtaEstimator"]

#: How far back the pace is measured.
WINDOW_SECONDS = 30.0


class EtaEstimator:
    """Estimates the seconds a run needs to finish its remaining jobs.

    Args:
        starts_per_second: what the run's rate limit allows (count divided
            by its window), or None when it has none.
        window_seconds: how far back the observed pace reaches.

    Raises:
        ValueError: a rate or window that is not positive.
    """

    def __init__(
        self, *, starts_per_second: float | None, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        if starts_per_second is not None and not starts_per_second > 0:
            raise ValueError(f"starts_per_second must be positive, got {starts_per_second!r}")
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        self._rate = starts_per_second
        self._window = window_seconds
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def observe(self, finished: int) -> None:
        """The run has ``finished`` jobs (completed or failed) now."""
        now = trio.current_time()
        samples = self._samples
        samples.append((now, finished))
        # Keep one sample at or before the window's start, to measure from.
        while len(samples) > 2 and samples[1][0] <= now - self._window:
            samples.popleft()

    def restart(self, finished: int) -> None:
        """Forget the pace observed so far: a run begins with ``finished`` jobs done."""
        self._samples.clear()
        self.observe(finished)

    def pace(self) -> float | None:
        """Jobs finished per second over the window up to now; None before
        any job finished in it."""
        if not self._samples:
            return None
        now = trio.current_time()
        since, first = self._samples[0]
        done = self._samples[-1][1] - first
        if done <= 0 or now <= since:
            return None
        return done / (now - since)

    def estimate(self, remaining: int) -> float | None:
        """Seconds until ``remaining`` more jobs are finished, rounded to
        a tenth; None when neither bound is known."""
        if remaining <= 0:
            return 0.0
        bounds = [remaining / rate for rate in (self.pace(), self._rate) if rate is not None]
        return round(max(bounds), 1) if bounds else None
