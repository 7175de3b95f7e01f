"""What both backends share about cluster-wide limits: the checks of their
arguments, and the arithmetic of a sliding window of cost.

A window of ``per_seconds`` is half-open: a take recorded at ``at`` counts
until ``at + per_seconds`` and no longer, so it counts while
``at > now - per_seconds``. Every backend computes that cutoff the same way
(a subtraction), so they agree on which takes a window holds. The Redis
script (``engine.store._redis_limits``) does the same arithmetic in Lua.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["check_rate", "check_slot", "positive_delays", "seconds_until_room"]


def check_rate(limit: float, per_seconds: float, cost: float) -> None:
    """Raises ``ValueError`` unless ``0 < cost <= limit`` and ``per_seconds > 0``,
    all finite: a cost above the limit would never fit in any window."""
    for name, value in (("limit", limit), ("per_seconds", per_seconds), ("cost", cost)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if cost > limit:
        raise ValueError(f"cost {cost!r} exceeds the limit {limit!r}; it would never fit")


def check_slot(limit: int, lease_seconds: float) -> None:
    """Raises ``ValueError`` unless ``limit >= 1`` and ``lease_seconds > 0`` (finite)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    if not (math.isfinite(lease_seconds) and lease_seconds > 0):
        raise ValueError(f"lease_seconds must be positive and finite, got {lease_seconds!r}")


def seconds_until_room(
    takes: Sequence[tuple[float, float]], now: float, limit: float, per_seconds: float, cost: float
) -> float:
    """How long until ``cost`` fits beside ``takes`` (0.0: it fits now).

    Args:
        takes: (time, cost) of the takes still in the window at ``now``,
            oldest first.
        now: the current time of the window's clock.
        limit, per_seconds, cost: as ``Store.take_rate`` takes them.
    """
    held = sum(taken for _, taken in takes)
    if held + cost <= limit:
        return 0.0
    for at, taken in takes:
        held -= taken
        if held + cost <= limit:
            return max(at + per_seconds - now, 0.0)
    return per_seconds  # only float rounding gets here: look again a window later


def positive_delays(delays: Mapping[str, float]) -> list[tuple[str, float]]:
    """The (holder, seconds) of ``delays`` that move a take: positive and finite."""
    return [
        (holder, seconds)
        for holder, seconds in delays.items()
        if math.isfinite(seconds) and seconds > 0
    ]
