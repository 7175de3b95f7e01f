"""Small statistics over lists of floats, stdlib only."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["max_in_window", "percentile", "quantiles"]


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def quantiles(values: Sequence[float], points: int = 101) -> list[float]:
    """``points`` evenly spaced percentiles of ``values``: enough to draw its
    distribution without keeping every sample."""
    if not values:
        return []
    return [
        value
        for value in (percentile(values, 100 * i / (points - 1)) for i in range(points))
        if value is not None
    ]


def max_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` inside any half-open window of length
    ``window``: the count a strict sliding-window limiter keeps at most N."""
    ordered = sorted(times)
    best = 0
    for index, start in enumerate(ordered):
        end = bisect.bisect_left(ordered, start + window, lo=index)
        best = max(best, end - index)
    return best
