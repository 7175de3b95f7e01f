"""How much of a rate limit's cost the busiest window of starts holds, for
the tests of rate limits."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def busiest_cost(starts: Sequence[tuple[float, float]], per_seconds: float) -> float:
    """The most cost any half-open window ``[t, t + per_seconds)`` holds,
    of ``(time, cost)`` starts. The busiest window can always be slid
    right until it begins at a start, so checking the windows that begin
    at each start covers them all."""
    ordered = sorted(starts)
    times = [t for t, _ in ordered]
    return max(
        (
            sum(c for _, c in ordered[i : bisect.bisect_left(times, t + per_seconds)])
            for i, t in enumerate(times)
        ),
        default=0.0,
    )
